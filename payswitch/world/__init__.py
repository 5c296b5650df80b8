"""The simulated world's configuration, which every party reads: the topology file.

``topology`` loads and checks the TOML world (nodes, latency, faults, BIN ranges, accounts,
cards, merchants, terminals, the switch); ``settlement`` its settlement and fee keys;
``tomlw`` writes topology documents; ``ports`` finds free loopback ports for test worlds.
"""
