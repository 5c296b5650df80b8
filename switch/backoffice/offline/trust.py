"""The switch settles against the network's trust book (``payswitch.offline.trustbook``)."""

from payswitch.offline.trustbook import TrustBook

__all__ = ["TrustBook"]
