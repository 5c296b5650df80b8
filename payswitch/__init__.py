"""payswitch API packages (generated code lives in payswitch.v1)."""
