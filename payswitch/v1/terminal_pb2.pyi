from payswitch.v1 import common_pb2 as _common_pb2
from payswitch.v1 import network_pb2 as _network_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransactionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_STATE_UNSPECIFIED: _ClassVar[TransactionState]
    TRANSACTION_STATE_RECEIVED: _ClassVar[TransactionState]
    TRANSACTION_STATE_PENDING: _ClassVar[TransactionState]
    TRANSACTION_STATE_APPROVED: _ClassVar[TransactionState]
    TRANSACTION_STATE_DECLINED: _ClassVar[TransactionState]
    TRANSACTION_STATE_UNKNOWN: _ClassVar[TransactionState]
    TRANSACTION_STATE_REVERSAL_PENDING: _ClassVar[TransactionState]
    TRANSACTION_STATE_REVERSED: _ClassVar[TransactionState]
    TRANSACTION_STATE_CAPTURED: _ClassVar[TransactionState]
    TRANSACTION_STATE_SETTLED: _ClassVar[TransactionState]
    TRANSACTION_STATE_VOIDED: _ClassVar[TransactionState]
    TRANSACTION_STATE_STOOD_IN: _ClassVar[TransactionState]
    TRANSACTION_STATE_ADVISED: _ClassVar[TransactionState]

class TransactionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_TYPE_UNSPECIFIED: _ClassVar[TransactionType]
    TRANSACTION_TYPE_AUTHORIZATION: _ClassVar[TransactionType]
    TRANSACTION_TYPE_REFUND: _ClassVar[TransactionType]

class BatchReconciliation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_RECONCILIATION_UNSPECIFIED: _ClassVar[BatchReconciliation]
    BATCH_RECONCILIATION_IN_BALANCE: _ClassVar[BatchReconciliation]
    BATCH_RECONCILIATION_OUT_OF_BALANCE: _ClassVar[BatchReconciliation]
TRANSACTION_STATE_UNSPECIFIED: TransactionState
TRANSACTION_STATE_RECEIVED: TransactionState
TRANSACTION_STATE_PENDING: TransactionState
TRANSACTION_STATE_APPROVED: TransactionState
TRANSACTION_STATE_DECLINED: TransactionState
TRANSACTION_STATE_UNKNOWN: TransactionState
TRANSACTION_STATE_REVERSAL_PENDING: TransactionState
TRANSACTION_STATE_REVERSED: TransactionState
TRANSACTION_STATE_CAPTURED: TransactionState
TRANSACTION_STATE_SETTLED: TransactionState
TRANSACTION_STATE_VOIDED: TransactionState
TRANSACTION_STATE_STOOD_IN: TransactionState
TRANSACTION_STATE_ADVISED: TransactionState
TRANSACTION_TYPE_UNSPECIFIED: TransactionType
TRANSACTION_TYPE_AUTHORIZATION: TransactionType
TRANSACTION_TYPE_REFUND: TransactionType
BATCH_RECONCILIATION_UNSPECIFIED: BatchReconciliation
BATCH_RECONCILIATION_IN_BALANCE: BatchReconciliation
BATCH_RECONCILIATION_OUT_OF_BALANCE: BatchReconciliation

class Card(_message.Message):
    __slots__ = ("pan", "expiry")
    PAN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    pan: str
    expiry: str
    def __init__(self, pan: _Optional[str] = ..., expiry: _Optional[str] = ...) -> None: ...

class AuthorizeRequest(_message.Message):
    __slots__ = ("idempotency_key", "terminal_id", "merchant_id", "stan", "local_time", "amount", "entry_mode", "card", "encrypted_card", "pin_block", "emv", "mac", "dcc_currency", "dcc_rate")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_CARD_FIELD_NUMBER: _ClassVar[int]
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    EMV_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    DCC_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DCC_RATE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    terminal_id: str
    merchant_id: str
    stan: int
    local_time: str
    amount: _common_pb2.Money
    entry_mode: _common_pb2.EntryMode
    card: Card
    encrypted_card: EncryptedCard
    pin_block: bytes
    emv: _network_pb2.EmvData
    mac: bytes
    dcc_currency: str
    dcc_rate: str
    def __init__(self, idempotency_key: _Optional[str] = ..., terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., stan: _Optional[int] = ..., local_time: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., entry_mode: _Optional[_Union[_common_pb2.EntryMode, str]] = ..., card: _Optional[_Union[Card, _Mapping]] = ..., encrypted_card: _Optional[_Union[EncryptedCard, _Mapping]] = ..., pin_block: _Optional[bytes] = ..., emv: _Optional[_Union[_network_pb2.EmvData, _Mapping]] = ..., mac: _Optional[bytes] = ..., dcc_currency: _Optional[str] = ..., dcc_rate: _Optional[str] = ...) -> None: ...

class QuoteDccRequest(_message.Message):
    __slots__ = ("terminal_id", "merchant_id", "amount", "card_bin")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CARD_BIN_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    merchant_id: str
    amount: _common_pb2.Money
    card_bin: str
    def __init__(self, terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., card_bin: _Optional[str] = ...) -> None: ...

class QuoteDccResponse(_message.Message):
    __slots__ = ("eligible", "cardholder_amount", "rate", "wholesale_rate", "markup_bps", "rate_table", "message")
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    CARDHOLDER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    WHOLESALE_RATE_FIELD_NUMBER: _ClassVar[int]
    MARKUP_BPS_FIELD_NUMBER: _ClassVar[int]
    RATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    eligible: bool
    cardholder_amount: _common_pb2.Money
    rate: str
    wholesale_rate: str
    markup_bps: int
    rate_table: str
    message: str
    def __init__(self, eligible: _Optional[bool] = ..., cardholder_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., rate: _Optional[str] = ..., wholesale_rate: _Optional[str] = ..., markup_bps: _Optional[int] = ..., rate_table: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EncryptedCard(_message.Message):
    __slots__ = ("ksn", "ciphertext")
    KSN_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    ksn: bytes
    ciphertext: bytes
    def __init__(self, ksn: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class CardData(_message.Message):
    __slots__ = ("pan", "expiry", "cvv2")
    PAN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    CVV2_FIELD_NUMBER: _ClassVar[int]
    pan: str
    expiry: str
    cvv2: str
    def __init__(self, pan: _Optional[str] = ..., expiry: _Optional[str] = ..., cvv2: _Optional[str] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("transaction_id", "response_code", "auth_code", "rrn", "stan", "amount", "scheme", "masked_pan", "acquirer_id", "message", "arpc", "stood_in", "rekey_required", "mac", "risk_reason", "pin_required", "billing_minor_units", "billing_currency", "conversion_rate", "rate_table", "dcc_markup_bps")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    AUTH_CODE_FIELD_NUMBER: _ClassVar[int]
    RRN_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    MASKED_PAN_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ARPC_FIELD_NUMBER: _ClassVar[int]
    STOOD_IN_FIELD_NUMBER: _ClassVar[int]
    REKEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    RISK_REASON_FIELD_NUMBER: _ClassVar[int]
    PIN_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    BILLING_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    BILLING_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    RATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    DCC_MARKUP_BPS_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    response_code: _common_pb2.ResponseCode
    auth_code: str
    rrn: str
    stan: int
    amount: _common_pb2.Money
    scheme: _common_pb2.CardScheme
    masked_pan: str
    acquirer_id: str
    message: str
    arpc: bytes
    stood_in: bool
    rekey_required: bool
    mac: bytes
    risk_reason: str
    pin_required: bool
    billing_minor_units: int
    billing_currency: str
    conversion_rate: str
    rate_table: str
    dcc_markup_bps: int
    def __init__(self, transaction_id: _Optional[str] = ..., response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., auth_code: _Optional[str] = ..., rrn: _Optional[str] = ..., stan: _Optional[int] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., masked_pan: _Optional[str] = ..., acquirer_id: _Optional[str] = ..., message: _Optional[str] = ..., arpc: _Optional[bytes] = ..., stood_in: _Optional[bool] = ..., rekey_required: _Optional[bool] = ..., mac: _Optional[bytes] = ..., risk_reason: _Optional[str] = ..., pin_required: _Optional[bool] = ..., billing_minor_units: _Optional[int] = ..., billing_currency: _Optional[str] = ..., conversion_rate: _Optional[str] = ..., rate_table: _Optional[str] = ..., dcc_markup_bps: _Optional[int] = ...) -> None: ...

class CaptureRequest(_message.Message):
    __slots__ = ("idempotency_key", "terminal_id", "transaction_id", "amount", "ksn", "mac")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    terminal_id: str
    transaction_id: str
    amount: _common_pb2.Money
    ksn: bytes
    mac: bytes
    def __init__(self, idempotency_key: _Optional[str] = ..., terminal_id: _Optional[str] = ..., transaction_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., ksn: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class CaptureResponse(_message.Message):
    __slots__ = ("response_code", "transaction", "message", "rekey_required", "mac")
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REKEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    response_code: _common_pb2.ResponseCode
    transaction: Transaction
    message: str
    rekey_required: bool
    mac: bytes
    def __init__(self, response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., transaction: _Optional[_Union[Transaction, _Mapping]] = ..., message: _Optional[str] = ..., rekey_required: _Optional[bool] = ..., mac: _Optional[bytes] = ...) -> None: ...

class VoidRequest(_message.Message):
    __slots__ = ("idempotency_key", "terminal_id", "transaction_id", "ksn", "mac")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    terminal_id: str
    transaction_id: str
    ksn: bytes
    mac: bytes
    def __init__(self, idempotency_key: _Optional[str] = ..., terminal_id: _Optional[str] = ..., transaction_id: _Optional[str] = ..., ksn: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class VoidResponse(_message.Message):
    __slots__ = ("response_code", "transaction", "message", "rekey_required", "mac")
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REKEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    response_code: _common_pb2.ResponseCode
    transaction: Transaction
    message: str
    rekey_required: bool
    mac: bytes
    def __init__(self, response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., transaction: _Optional[_Union[Transaction, _Mapping]] = ..., message: _Optional[str] = ..., rekey_required: _Optional[bool] = ..., mac: _Optional[bytes] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("idempotency_key", "terminal_id", "original_transaction_id", "amount", "stan", "local_time", "ksn", "mac")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    terminal_id: str
    original_transaction_id: str
    amount: _common_pb2.Money
    stan: int
    local_time: str
    ksn: bytes
    mac: bytes
    def __init__(self, idempotency_key: _Optional[str] = ..., terminal_id: _Optional[str] = ..., original_transaction_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., stan: _Optional[int] = ..., local_time: _Optional[str] = ..., ksn: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class RefundResponse(_message.Message):
    __slots__ = ("response_code", "transaction", "message", "rekey_required", "mac")
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REKEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    response_code: _common_pb2.ResponseCode
    transaction: Transaction
    message: str
    rekey_required: bool
    mac: bytes
    def __init__(self, response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., transaction: _Optional[_Union[Transaction, _Mapping]] = ..., message: _Optional[str] = ..., rekey_required: _Optional[bool] = ..., mac: _Optional[bytes] = ...) -> None: ...

class GetTransactionRequest(_message.Message):
    __slots__ = ("terminal_id", "transaction_id", "idempotency_key", "ksn", "mac")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    transaction_id: str
    idempotency_key: str
    ksn: bytes
    mac: bytes
    def __init__(self, terminal_id: _Optional[str] = ..., transaction_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., ksn: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class GetTransactionResponse(_message.Message):
    __slots__ = ("transaction", "rekey_required", "mac")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    REKEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    rekey_required: bool
    mac: bytes
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., rekey_required: _Optional[bool] = ..., mac: _Optional[bytes] = ...) -> None: ...

class EchoRequest(_message.Message):
    __slots__ = ("terminal_id", "message")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    message: str
    def __init__(self, terminal_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("message", "switch_id", "server_time_ms")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SWITCH_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    message: str
    switch_id: str
    server_time_ms: int
    def __init__(self, message: _Optional[str] = ..., switch_id: _Optional[str] = ..., server_time_ms: _Optional[int] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("transaction_id", "type", "state", "terminal_id", "merchant_id", "stan", "local_time", "amount", "captured", "refunded", "response_code", "auth_code", "rrn", "scheme", "masked_pan", "acquirer_id", "original_transaction_id", "created_at_ms", "updated_at_ms", "billing_minor_units", "billing_currency", "conversion_rate", "rate_table", "billing_captured_minor_units", "dcc_markup_bps", "dcc_local_minor_units", "dcc_local_currency")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    AUTH_CODE_FIELD_NUMBER: _ClassVar[int]
    RRN_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    MASKED_PAN_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    BILLING_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    BILLING_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    RATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    BILLING_CAPTURED_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    DCC_MARKUP_BPS_FIELD_NUMBER: _ClassVar[int]
    DCC_LOCAL_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    DCC_LOCAL_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    type: TransactionType
    state: TransactionState
    terminal_id: str
    merchant_id: str
    stan: int
    local_time: str
    amount: _common_pb2.Money
    captured: _common_pb2.Money
    refunded: _common_pb2.Money
    response_code: _common_pb2.ResponseCode
    auth_code: str
    rrn: str
    scheme: _common_pb2.CardScheme
    masked_pan: str
    acquirer_id: str
    original_transaction_id: str
    created_at_ms: int
    updated_at_ms: int
    billing_minor_units: int
    billing_currency: str
    conversion_rate: str
    rate_table: str
    billing_captured_minor_units: int
    dcc_markup_bps: int
    dcc_local_minor_units: int
    dcc_local_currency: str
    def __init__(self, transaction_id: _Optional[str] = ..., type: _Optional[_Union[TransactionType, str]] = ..., state: _Optional[_Union[TransactionState, str]] = ..., terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., stan: _Optional[int] = ..., local_time: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., captured: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., refunded: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., auth_code: _Optional[str] = ..., rrn: _Optional[str] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., masked_pan: _Optional[str] = ..., acquirer_id: _Optional[str] = ..., original_transaction_id: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., billing_minor_units: _Optional[int] = ..., billing_currency: _Optional[str] = ..., conversion_rate: _Optional[str] = ..., rate_table: _Optional[str] = ..., billing_captured_minor_units: _Optional[int] = ..., dcc_markup_bps: _Optional[int] = ..., dcc_local_minor_units: _Optional[int] = ..., dcc_local_currency: _Optional[str] = ...) -> None: ...

class BatchTotal(_message.Message):
    __slots__ = ("currency", "scheme", "sale_count", "sale_minor", "refund_count", "refund_minor", "void_count")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    SALE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SALE_MINOR_FIELD_NUMBER: _ClassVar[int]
    REFUND_COUNT_FIELD_NUMBER: _ClassVar[int]
    REFUND_MINOR_FIELD_NUMBER: _ClassVar[int]
    VOID_COUNT_FIELD_NUMBER: _ClassVar[int]
    currency: str
    scheme: _common_pb2.CardScheme
    sale_count: int
    sale_minor: int
    refund_count: int
    refund_minor: int
    void_count: int
    def __init__(self, currency: _Optional[str] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., sale_count: _Optional[int] = ..., sale_minor: _Optional[int] = ..., refund_count: _Optional[int] = ..., refund_minor: _Optional[int] = ..., void_count: _Optional[int] = ...) -> None: ...

class CloseBatchRequest(_message.Message):
    __slots__ = ("idempotency_key", "terminal_id", "merchant_id", "terminal_totals", "ksn", "mac")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_TOTALS_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    terminal_id: str
    merchant_id: str
    terminal_totals: _containers.RepeatedCompositeFieldContainer[BatchTotal]
    ksn: bytes
    mac: bytes
    def __init__(self, idempotency_key: _Optional[str] = ..., terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., terminal_totals: _Optional[_Iterable[_Union[BatchTotal, _Mapping]]] = ..., ksn: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class BatchMismatch(_message.Message):
    __slots__ = ("currency", "scheme", "field", "switch_value", "terminal_value")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SWITCH_VALUE_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    currency: str
    scheme: _common_pb2.CardScheme
    field: str
    switch_value: int
    terminal_value: int
    def __init__(self, currency: _Optional[str] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., field: _Optional[str] = ..., switch_value: _Optional[int] = ..., terminal_value: _Optional[int] = ...) -> None: ...

class CloseBatchResponse(_message.Message):
    __slots__ = ("batch_number", "switch_totals", "in_balance", "reconciliation", "mismatches", "opened_at_ms", "closed_at_ms", "message", "response_code", "rekey_required", "mac")
    BATCH_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SWITCH_TOTALS_FIELD_NUMBER: _ClassVar[int]
    IN_BALANCE_FIELD_NUMBER: _ClassVar[int]
    RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    REKEY_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    batch_number: int
    switch_totals: _containers.RepeatedCompositeFieldContainer[BatchTotal]
    in_balance: bool
    reconciliation: BatchReconciliation
    mismatches: _containers.RepeatedCompositeFieldContainer[BatchMismatch]
    opened_at_ms: int
    closed_at_ms: int
    message: str
    response_code: _common_pb2.ResponseCode
    rekey_required: bool
    mac: bytes
    def __init__(self, batch_number: _Optional[int] = ..., switch_totals: _Optional[_Iterable[_Union[BatchTotal, _Mapping]]] = ..., in_balance: _Optional[bool] = ..., reconciliation: _Optional[_Union[BatchReconciliation, str]] = ..., mismatches: _Optional[_Iterable[_Union[BatchMismatch, _Mapping]]] = ..., opened_at_ms: _Optional[int] = ..., closed_at_ms: _Optional[int] = ..., message: _Optional[str] = ..., response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., rekey_required: _Optional[bool] = ..., mac: _Optional[bytes] = ...) -> None: ...
