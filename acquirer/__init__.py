"""The acquirer: the merchant's bank host in the simulated network.

``node`` forwards authorizations by card brand to that brand's scheme, translating the PIN
block from the switch's zone to the issuer's in its own HSM (``pin_zone``); ``back_office``
settles the switch's clearing files with the issuers and writes settlement reports.
"""
