"""The simulated card network: acquirer, scheme and issuer nodes, and the topology file."""
