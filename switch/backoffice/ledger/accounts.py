"""The chart of accounts. An account is ``<type>:<party>``; every balance is per currency.

Signs: a line's amount > 0 is a debit, < 0 a credit; a balance is the sum of its lines, so an
asset or expense has a positive (debit) balance and a liability or income a negative (credit)
one. The sum over all accounts of one currency is zero at every instant.

====================================  =========  ==========================================
account                               type       holds
====================================  =========  ==========================================
``merchant_payable:<merchant>``       liability  what the switch owes the merchant: captured
                                                 minus refunded minus fees minus chargebacks
                                                 lost (credit balance)
``acquirer_receivable:<acquirer>``    asset      what the acquirer still owes for presented
                                                 transactions (zero once settled)
``settlement_cash:<acquirer>``        asset      funds received from (paid to) the acquirer
``interchange_expense:<scheme>``      expense    interchange withheld for the issuers
``scheme_fee_expense:<scheme>``       expense    scheme fees withheld
``merchant_fee_income``               income     fees charged on to merchants (pass-through:
                                                 equals interchange + scheme fees)
``chargeback_suspense:<acquirer>``    suspense   represented chargeback amounts while the
                                                 issuer decides (zero when no dispute is open)
====================================  =========  ==========================================
"""

from __future__ import annotations


def merchant_payable(merchant_id: str) -> str:
    return f"merchant_payable:{merchant_id}"


def acquirer_receivable(acquirer_id: str) -> str:
    return f"acquirer_receivable:{acquirer_id}"


def settlement_cash(acquirer_id: str) -> str:
    return f"settlement_cash:{acquirer_id}"


def interchange_expense(scheme: str) -> str:
    return f"interchange_expense:{scheme}"


def scheme_fee_expense(scheme: str) -> str:
    return f"scheme_fee_expense:{scheme}"


MERCHANT_FEE_INCOME = "merchant_fee_income"


def chargeback_suspense(acquirer_id: str) -> str:
    return f"chargeback_suspense:{acquirer_id}"


# Cross-border (issue 16), in the cardholder's billing currency:
def issuer_receivable(scheme: str) -> str:
    """What the card's issuers owe through the scheme for converted sales (billing currency)."""
    return f"issuer_receivable:{scheme}"


def fx_position(scheme: str) -> str:
    """The billing-currency value, at the clearing-time rate, of what was paid out in the
    transaction currency for converted sales."""
    return f"fx_position:{scheme}"


# The difference between the rate at authorization (what the cardholder was billed) and the
# rate at clearing: a gain is a credit, a loss a debit.
FX_DIFFERENCE = "fx_difference"
