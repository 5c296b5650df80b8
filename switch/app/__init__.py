"""The switch process: ``main`` (``payswitch-switch``) and ``server``, which assembles the
services, workers and gRPC servers from the topology."""
