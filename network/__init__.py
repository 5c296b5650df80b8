"""What the three network parties (``acquirer``, ``scheme``, ``issuer``) share as nodes.

Each node is its own process (``payswitch-node --topology FILE --id NODE_ID``, see ``stack``),
a grpc.aio server on uvloop with gRPC health and reflection, listening on 127.0.0.1 at the
address the topology gives it. The switch never imports this package.

Modules:
- ``server``: bootstrap, health, reflection, shutdown; ``control``: runtime fault control.
- ``hop``: what every node does per request (fault draw, latency, budget, one log line).
- ``deadline``, ``latency``, ``faults``: the budget arithmetic, delays, injected faults.
- ``channels``: outgoing channels to the next hop; ``hsm_node``: each acquirer's and issuer's
  own HSM pool, opened at start (fail closed).

Answers a node gives itself: 12 for a brand it does not carry, 14 (scheme) for a BIN no issuer
owns, 91 when nothing is left of the caller's budget after its margin, 96 (acquirer) for a PIN
block that does not open under the switch's zone PIN key or when its HSM fails. Failures of the next
hop are passed back as the same gRPC status, never as a decline (the outcome is unknown).
Fault injection and latency apply to Authorize, Reverse, Capture and Refund on every node,
not to the issuer's GetAccount/GetHold, which tests and reconciliation read.
"""
