"""The issuer: the cardholder's bank in the simulated network.

``node`` decides authorizations against its books; ``crypto`` checks PIN, CVV2 and ARQC and
makes the ARPC in the issuer's own HSM; ``books`` (SQLite, synchronous) and ``bookkeeper`` (the
same on one worker thread) keep accounts, holds and advices; ``books_settlement`` posts
presentments; ``back_office`` serves clearing over gRPC; ``chargebacks`` raises disputes.
"""
