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
- ``hsm_node``: each acquirer's and issuer's own HSM pool, opened at start (fail closed);
  ``pin_zone`` (acquirer PIN translation), ``issuer_crypto`` (PIN, CVV2, ARQC/ARPC),
  ``emvdata`` (chip data on the wire); ``cards_sim``: what a simulated card holds (CVV2,
  ARQC), for tests and the terminal simulator only.
- ``server``: bootstrap, health, reflection, shutdown; ``main``: the node command.
- ``stack``: the launcher and its test API; ``ports``/``tomlw``: topologies on free ports.
- ``local``: every node in one event loop, for tests that need no processes.

Answers a node gives itself: 12 for a brand it does not carry, 14 (scheme) for a BIN no issuer
owns, 91 when nothing is left of the caller's budget after its margin, 96 (acquirer) for a PIN
block that does not open under the switch's zone PIN key or when its HSM fails. Failures of the next
hop are passed back as the same gRPC status, never as a decline (the outcome is unknown).
Fault injection and latency apply to Authorize, Reverse, Capture and Refund on every node,
not to the issuer's GetAccount/GetHold, which tests and reconciliation read.
"""
