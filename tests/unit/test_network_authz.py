"""Who may call what on a network node (network.authz): the table, read as the nodes read it."""

from __future__ import annotations

from network.authz import allowed, callers

V1 = "/payswitch.v1."


def test_each_hop_is_callable_only_by_the_party_before_it():
    assert allowed(f"{V1}AcquirerService/Authorize", ("switch", "switch-1"))
    assert allowed(f"{V1}SchemeService/Reverse", ("acquirer", "acq-alpha"))
    assert allowed(f"{V1}IssuerService/Authorize", ("scheme", "visanet"))
    assert not allowed(f"{V1}IssuerService/Authorize", ("acquirer", "acq-alpha"))
    assert not allowed(f"{V1}IssuerService/Authorize", ("switch", "switch-1"))
    assert not allowed(f"{V1}IssuerService/Authorize", ("operator", "ops"))
    assert not allowed(f"{V1}AcquirerService/Authorize", ("scheme", "visanet"))
    assert not allowed(f"{V1}IssuerService/Authorize", None)


def test_back_office_control_and_books_have_their_own_callers():
    assert allowed(f"{V1}AcquirerSettlementService/Settle", ("switch", "switch-1"))
    assert not allowed(f"{V1}AcquirerSettlementService/Settle", ("operator", "ops"))
    assert allowed(f"{V1}IssuerSettlementService/Present", ("acquirer", "acq-beta"))
    assert not allowed(f"{V1}IssuerSettlementService/Present", ("scheme", "visanet"))
    assert allowed(f"{V1}IssuerSettlementService/ExpireHolds", ("switch", "switch-1"))
    assert not allowed(f"{V1}IssuerSettlementService/ExpireHolds", ("acquirer", "acq-beta"))
    assert allowed(f"{V1}NodeControlService/SetFaults", ("operator", "ops"))
    assert not allowed(f"{V1}NodeControlService/SetFaults", ("switch", "switch-1"))
    assert allowed(f"{V1}IssuerService/GetHold", ("operator", "ops"))
    assert not allowed(f"{V1}IssuerService/GetHold", ("scheme", "visanet"))


def test_an_unlisted_method_is_refused_and_health_is_open_to_the_network():
    assert callers(f"{V1}IssuerService2/Authorize") == frozenset()
    assert not allowed(f"{V1}TerminalService/Authorize", ("switch", "switch-1"))
    assert allowed("/grpc.health.v1.Health/Check", None)
