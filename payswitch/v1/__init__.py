"""Generated protobuf and gRPC code for payswitch.v1 (`make proto`); never edit by hand."""
