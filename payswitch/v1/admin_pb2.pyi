from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RiskVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_VERDICT_UNSPECIFIED: _ClassVar[RiskVerdict]
    RISK_VERDICT_FRAUD: _ClassVar[RiskVerdict]
    RISK_VERDICT_FALSE_POSITIVE: _ClassVar[RiskVerdict]
RISK_VERDICT_UNSPECIFIED: RiskVerdict
RISK_VERDICT_FRAUD: RiskVerdict
RISK_VERDICT_FALSE_POSITIVE: RiskVerdict

class RiskReview(_message.Message):
    __slots__ = ("transaction_id", "card_token", "score", "reasons", "created_at_ms")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    card_token: str
    score: int
    reasons: _containers.RepeatedScalarFieldContainer[str]
    created_at_ms: int
    def __init__(self, transaction_id: _Optional[str] = ..., card_token: _Optional[str] = ..., score: _Optional[int] = ..., reasons: _Optional[_Iterable[str]] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class ListRiskReviewsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListRiskReviewsResponse(_message.Message):
    __slots__ = ("reviews",)
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[RiskReview]
    def __init__(self, reviews: _Optional[_Iterable[_Union[RiskReview, _Mapping]]] = ...) -> None: ...

class ResolveRiskReviewRequest(_message.Message):
    __slots__ = ("transaction_id", "verdict")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    verdict: RiskVerdict
    def __init__(self, transaction_id: _Optional[str] = ..., verdict: _Optional[_Union[RiskVerdict, str]] = ...) -> None: ...

class ResolveRiskReviewResponse(_message.Message):
    __slots__ = ("review", "list")
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    review: RiskReview
    list: str
    def __init__(self, review: _Optional[_Union[RiskReview, _Mapping]] = ..., list: _Optional[str] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("ikid", "terminal_id")
    IKID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    ikid: str
    terminal_id: str
    def __init__(self, ikid: _Optional[str] = ..., terminal_id: _Optional[str] = ...) -> None: ...

class RegisterDeviceResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class TerminalEntry(_message.Message):
    __slots__ = ("terminal_id", "merchant_id", "revoked", "revoke_reason", "revoked_at_ms")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    merchant_id: str
    revoked: bool
    revoke_reason: str
    revoked_at_ms: int
    def __init__(self, terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., revoked: _Optional[bool] = ..., revoke_reason: _Optional[str] = ..., revoked_at_ms: _Optional[int] = ...) -> None: ...

class ListTerminalsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTerminalsResponse(_message.Message):
    __slots__ = ("terminals",)
    TERMINALS_FIELD_NUMBER: _ClassVar[int]
    terminals: _containers.RepeatedCompositeFieldContainer[TerminalEntry]
    def __init__(self, terminals: _Optional[_Iterable[_Union[TerminalEntry, _Mapping]]] = ...) -> None: ...

class RevokeTerminalRequest(_message.Message):
    __slots__ = ("terminal_id", "reason")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    reason: str
    def __init__(self, terminal_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeTerminalResponse(_message.Message):
    __slots__ = ("terminal",)
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    terminal: TerminalEntry
    def __init__(self, terminal: _Optional[_Union[TerminalEntry, _Mapping]] = ...) -> None: ...

class ReinstateTerminalRequest(_message.Message):
    __slots__ = ("terminal_id",)
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    def __init__(self, terminal_id: _Optional[str] = ...) -> None: ...

class ReinstateTerminalResponse(_message.Message):
    __slots__ = ("terminal", "was_revoked")
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    WAS_REVOKED_FIELD_NUMBER: _ClassVar[int]
    terminal: TerminalEntry
    was_revoked: bool
    def __init__(self, terminal: _Optional[_Union[TerminalEntry, _Mapping]] = ..., was_revoked: _Optional[bool] = ...) -> None: ...

class SafItem(_message.Message):
    __slots__ = ("id", "kind", "transaction_id", "attempts", "created_at_ms", "next_attempt_at_ms", "last_error", "dead")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    transaction_id: str
    attempts: int
    created_at_ms: int
    next_attempt_at_ms: int
    last_error: str
    dead: bool
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., transaction_id: _Optional[str] = ..., attempts: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., next_attempt_at_ms: _Optional[int] = ..., last_error: _Optional[str] = ..., dead: _Optional[bool] = ...) -> None: ...

class ListSafItemsRequest(_message.Message):
    __slots__ = ("dead_letters", "limit")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    dead_letters: bool
    limit: int
    def __init__(self, dead_letters: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class ListSafItemsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SafItem]
    def __init__(self, items: _Optional[_Iterable[_Union[SafItem, _Mapping]]] = ...) -> None: ...

class ReplayDeadLetterRequest(_message.Message):
    __slots__ = ("item_id",)
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    def __init__(self, item_id: _Optional[str] = ...) -> None: ...

class ReplayDeadLetterResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: SafItem
    def __init__(self, item: _Optional[_Union[SafItem, _Mapping]] = ...) -> None: ...

class Circuit(_message.Message):
    __slots__ = ("acquirer_id", "state", "consecutive_failures", "error_rate", "opened_at_ms")
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    acquirer_id: str
    state: str
    consecutive_failures: int
    error_rate: float
    opened_at_ms: int
    def __init__(self, acquirer_id: _Optional[str] = ..., state: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., error_rate: _Optional[float] = ..., opened_at_ms: _Optional[int] = ...) -> None: ...

class ListCircuitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCircuitsResponse(_message.Message):
    __slots__ = ("circuits",)
    CIRCUITS_FIELD_NUMBER: _ClassVar[int]
    circuits: _containers.RepeatedCompositeFieldContainer[Circuit]
    def __init__(self, circuits: _Optional[_Iterable[_Union[Circuit, _Mapping]]] = ...) -> None: ...
