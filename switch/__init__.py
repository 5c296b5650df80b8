"""The payswitch authorization switch: gRPC server, pipeline, routing, connectors, state store."""

from payswitch.leanimports import structlog_without_rich

structlog_without_rich()  # first thing in the switch's process: see payswitch/leanimports.py
