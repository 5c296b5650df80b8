"""Operators' command lines: ``admin`` (``payswitch-admin``), ``saf``, ``recon``
(``payswitch-recon``) and ``disputes`` (``payswitch-dispute``)."""
