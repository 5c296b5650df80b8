"""The simulated world as running processes: what starts every party.

``launcher`` (``payswitch-stack``) starts issuers, schemes, acquirers and the switch from one
topology file and is the tests' API to the running world; ``node`` (``payswitch-node``) runs one
network node; ``nodes`` maps a topology kind to the party's code; ``local`` runs every network
node inside one event loop, for tests that need no processes.
"""

from payswitch.leanimports import structlog_without_rich

structlog_without_rich()  # first thing in every node's process: see payswitch/leanimports.py
