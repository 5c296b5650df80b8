"""The card scheme (VisaNet, Banknet, ...) in the simulated network: ``node`` routes each
message by BIN to the issuer that owns it."""
