"""The payswitch authorization switch: gRPC server, pipeline, routing, connectors, state store."""
