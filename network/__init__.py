"""The simulated card network: acquirer, scheme and issuer nodes, and the topology file.

Each node is its own process (``payswitch-node --topology FILE --id NODE_ID``), a grpc.aio
server on uvloop with gRPC health and reflection, listening on 127.0.0.1 at the address the
topology gives it. ``payswitch-stack`` (``network.stack``) starts them all, plus the switch.

Modules:
- ``topology``: the TOML world (nodes, latency, faults, BIN ranges, accounts, cards).
- ``acquirer``, ``scheme``, ``issuer``: one module per node kind; ``nodes`` maps kind to code.
- ``hop``: what every node does per request (fault draw, latency, budget, one log line).
- ``deadline``, ``latency``, ``faults``: the budget arithmetic, delays, injected faults.
- ``books`` (SQLite, synchronous) and ``bookkeeper`` (the same on one worker thread).
- ``server``: bootstrap, health, reflection, shutdown; ``main``: the node command.
- ``stack``: the launcher and its test API; ``ports``/``tomlw``: topologies on free ports.
- ``local``: every node in one event loop, for tests that need no processes.

Answers a node gives itself: 12 for a brand it does not carry, 14 (scheme) for a BIN no issuer
owns, 91 when nothing is left of the caller's budget after its margin. Failures of the next
hop are passed back as the same gRPC status, never as a decline (the outcome is unknown).
Fault injection and latency apply to Authorize, Reverse, Capture and Refund on every node,
not to the issuer's GetAccount/GetHold, which tests and reconciliation read.
"""
