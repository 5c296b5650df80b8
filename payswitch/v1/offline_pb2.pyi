from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncOfflineRequest(_message.Message):
    __slots__ = ("terminal_id", "merchant_id", "seq", "allowance", "allowance_signature", "spend", "spend_signature", "trust_version", "journal_id")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ALLOWANCE_FIELD_NUMBER: _ClassVar[int]
    ALLOWANCE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SPEND_FIELD_NUMBER: _ClassVar[int]
    SPEND_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRUST_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_ID_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    merchant_id: str
    seq: int
    allowance: bytes
    allowance_signature: bytes
    spend: bytes
    spend_signature: bytes
    trust_version: int
    journal_id: str
    def __init__(self, terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., seq: _Optional[int] = ..., allowance: _Optional[bytes] = ..., allowance_signature: _Optional[bytes] = ..., spend: _Optional[bytes] = ..., spend_signature: _Optional[bytes] = ..., trust_version: _Optional[int] = ..., journal_id: _Optional[str] = ...) -> None: ...

class SyncOfflineResponse(_message.Message):
    __slots__ = ("settled_through", "accepted", "flagged", "repeated", "trust")
    SETTLED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    REPEATED_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    settled_through: int
    accepted: int
    flagged: int
    repeated: int
    trust: OfflineTrust
    def __init__(self, settled_through: _Optional[int] = ..., accepted: _Optional[int] = ..., flagged: _Optional[int] = ..., repeated: _Optional[int] = ..., trust: _Optional[_Union[OfflineTrust, _Mapping]] = ...) -> None: ...

class OfflineIssuerKey(_message.Message):
    __slots__ = ("issuer", "version", "public_key")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    version: int
    public_key: bytes
    def __init__(self, issuer: _Optional[str] = ..., version: _Optional[int] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class OfflineLimits(_message.Message):
    __slots__ = ("floor_limit", "per_card_count", "per_card_total")
    FLOOR_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PER_CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    PER_CARD_TOTAL_FIELD_NUMBER: _ClassVar[int]
    floor_limit: int
    per_card_count: int
    per_card_total: int
    def __init__(self, floor_limit: _Optional[int] = ..., per_card_count: _Optional[int] = ..., per_card_total: _Optional[int] = ...) -> None: ...

class OfflineTrust(_message.Message):
    __slots__ = ("version", "keys", "revoked_keys", "revoked_devices", "limits")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_KEYS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_DEVICES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    version: int
    keys: _containers.RepeatedCompositeFieldContainer[OfflineIssuerKey]
    revoked_keys: _containers.RepeatedCompositeFieldContainer[OfflineIssuerKey]
    revoked_devices: _containers.RepeatedScalarFieldContainer[str]
    limits: OfflineLimits
    def __init__(self, version: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[OfflineIssuerKey, _Mapping]]] = ..., revoked_keys: _Optional[_Iterable[_Union[OfflineIssuerKey, _Mapping]]] = ..., revoked_devices: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[OfflineLimits, _Mapping]] = ...) -> None: ...

class GetOfflineStatusRequest(_message.Message):
    __slots__ = ("terminal_id", "journal_id")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_ID_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    journal_id: str
    def __init__(self, terminal_id: _Optional[str] = ..., journal_id: _Optional[str] = ...) -> None: ...

class GetOfflineStatusResponse(_message.Message):
    __slots__ = ("settled_through", "trust")
    SETTLED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    settled_through: int
    trust: OfflineTrust
    def __init__(self, settled_through: _Optional[int] = ..., trust: _Optional[_Union[OfflineTrust, _Mapping]] = ...) -> None: ...

class GrantOfflineAllowanceRequest(_message.Message):
    __slots__ = ("issuer", "account_id", "card_token", "device_public_key", "currency", "cumulative_cap", "per_tx_cap", "count_cap", "replaces_allowance_id")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CARD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CUMULATIVE_CAP_FIELD_NUMBER: _ClassVar[int]
    PER_TX_CAP_FIELD_NUMBER: _ClassVar[int]
    COUNT_CAP_FIELD_NUMBER: _ClassVar[int]
    REPLACES_ALLOWANCE_ID_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    account_id: str
    card_token: str
    device_public_key: bytes
    currency: str
    cumulative_cap: int
    per_tx_cap: int
    count_cap: int
    replaces_allowance_id: str
    def __init__(self, issuer: _Optional[str] = ..., account_id: _Optional[str] = ..., card_token: _Optional[str] = ..., device_public_key: _Optional[bytes] = ..., currency: _Optional[str] = ..., cumulative_cap: _Optional[int] = ..., per_tx_cap: _Optional[int] = ..., count_cap: _Optional[int] = ..., replaces_allowance_id: _Optional[str] = ...) -> None: ...

class GrantOfflineAllowanceResponse(_message.Message):
    __slots__ = ("allowance", "allowance_signature", "returned")
    ALLOWANCE_FIELD_NUMBER: _ClassVar[int]
    ALLOWANCE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    RETURNED_FIELD_NUMBER: _ClassVar[int]
    allowance: bytes
    allowance_signature: bytes
    returned: int
    def __init__(self, allowance: _Optional[bytes] = ..., allowance_signature: _Optional[bytes] = ..., returned: _Optional[int] = ...) -> None: ...

class IssueOfflineAllowanceRequest(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: GrantOfflineAllowanceRequest
    def __init__(self, grant: _Optional[_Union[GrantOfflineAllowanceRequest, _Mapping]] = ...) -> None: ...

class IssueOfflineAllowanceResponse(_message.Message):
    __slots__ = ("allowance",)
    ALLOWANCE_FIELD_NUMBER: _ClassVar[int]
    allowance: GrantOfflineAllowanceResponse
    def __init__(self, allowance: _Optional[_Union[GrantOfflineAllowanceResponse, _Mapping]] = ...) -> None: ...

class GetOfflineKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetOfflineKeysResponse(_message.Message):
    __slots__ = ("keys", "revoked_keys")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[OfflineIssuerKey]
    revoked_keys: _containers.RepeatedCompositeFieldContainer[OfflineIssuerKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[OfflineIssuerKey, _Mapping]]] = ..., revoked_keys: _Optional[_Iterable[_Union[OfflineIssuerKey, _Mapping]]] = ...) -> None: ...

class PostOfflineSpendRequest(_message.Message):
    __slots__ = ("spend_key", "allowance_id", "amount", "currency", "merchant_id", "beyond_allowance")
    SPEND_KEY_FIELD_NUMBER: _ClassVar[int]
    ALLOWANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    BEYOND_ALLOWANCE_FIELD_NUMBER: _ClassVar[int]
    spend_key: str
    allowance_id: str
    amount: int
    currency: str
    merchant_id: str
    beyond_allowance: bool
    def __init__(self, spend_key: _Optional[str] = ..., allowance_id: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., merchant_id: _Optional[str] = ..., beyond_allowance: _Optional[bool] = ...) -> None: ...

class PostOfflineSpendResponse(_message.Message):
    __slots__ = ("from_hold", "charged", "repeated")
    FROM_HOLD_FIELD_NUMBER: _ClassVar[int]
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    REPEATED_FIELD_NUMBER: _ClassVar[int]
    from_hold: int
    charged: int
    repeated: bool
    def __init__(self, from_hold: _Optional[int] = ..., charged: _Optional[int] = ..., repeated: _Optional[bool] = ...) -> None: ...
