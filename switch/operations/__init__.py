"""Operations on an existing authorization: capture, void, refund, lookup.

Each is idempotent under the request's key like Authorize, and the issuer is the arbiter of
races (a capture and a void of the same authorization): the switch's compare-and-set follows
the issuer's answer.
"""
