from payswitch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReversalReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVERSAL_REASON_UNSPECIFIED: _ClassVar[ReversalReason]
    REVERSAL_REASON_TIMEOUT: _ClassVar[ReversalReason]
    REVERSAL_REASON_VOID: _ClassVar[ReversalReason]
    REVERSAL_REASON_UNDELIVERED: _ClassVar[ReversalReason]

class AdviceReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADVICE_REASON_UNSPECIFIED: _ClassVar[AdviceReason]
    ADVICE_REASON_STAND_IN: _ClassVar[AdviceReason]

class HoldState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOLD_STATE_UNSPECIFIED: _ClassVar[HoldState]
    HOLD_STATE_HELD: _ClassVar[HoldState]
    HOLD_STATE_POSTED: _ClassVar[HoldState]
    HOLD_STATE_RELEASED: _ClassVar[HoldState]
REVERSAL_REASON_UNSPECIFIED: ReversalReason
REVERSAL_REASON_TIMEOUT: ReversalReason
REVERSAL_REASON_VOID: ReversalReason
REVERSAL_REASON_UNDELIVERED: ReversalReason
ADVICE_REASON_UNSPECIFIED: AdviceReason
ADVICE_REASON_STAND_IN: AdviceReason
HOLD_STATE_UNSPECIFIED: HoldState
HOLD_STATE_HELD: HoldState
HOLD_STATE_POSTED: HoldState
HOLD_STATE_RELEASED: HoldState

class NetworkAuthorization(_message.Message):
    __slots__ = ("rrn", "stan", "acquirer_id", "merchant_id", "terminal_id", "merchant_category_code", "amount", "scheme", "entry_mode", "pan", "expiry", "transmission_time_ms", "pin_block", "cvv2", "emv", "conversion")
    RRN_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    TRANSMISSION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    CVV2_FIELD_NUMBER: _ClassVar[int]
    EMV_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    rrn: str
    stan: int
    acquirer_id: str
    merchant_id: str
    terminal_id: str
    merchant_category_code: str
    amount: _common_pb2.Money
    scheme: _common_pb2.CardScheme
    entry_mode: _common_pb2.EntryMode
    pan: str
    expiry: str
    transmission_time_ms: int
    pin_block: bytes
    cvv2: str
    emv: EmvData
    conversion: Conversion
    def __init__(self, rrn: _Optional[str] = ..., stan: _Optional[int] = ..., acquirer_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., terminal_id: _Optional[str] = ..., merchant_category_code: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., entry_mode: _Optional[_Union[_common_pb2.EntryMode, str]] = ..., pan: _Optional[str] = ..., expiry: _Optional[str] = ..., transmission_time_ms: _Optional[int] = ..., pin_block: _Optional[bytes] = ..., cvv2: _Optional[str] = ..., emv: _Optional[_Union[EmvData, _Mapping]] = ..., conversion: _Optional[_Union[Conversion, _Mapping]] = ...) -> None: ...

class Conversion(_message.Message):
    __slots__ = ("billing_amount", "rate", "rate_table")
    BILLING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    RATE_TABLE_FIELD_NUMBER: _ClassVar[int]
    billing_amount: _common_pb2.Money
    rate: str
    rate_table: str
    def __init__(self, billing_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., rate: _Optional[str] = ..., rate_table: _Optional[str] = ...) -> None: ...

class EmvData(_message.Message):
    __slots__ = ("arqc", "atc", "unpredictable_number", "pan_sequence_number", "amount_authorised", "amount_other", "terminal_country_code", "tvr", "transaction_currency_code", "transaction_date", "transaction_type", "aip", "issuer_application_data")
    ARQC_FIELD_NUMBER: _ClassVar[int]
    ATC_FIELD_NUMBER: _ClassVar[int]
    UNPREDICTABLE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PAN_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_AUTHORISED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OTHER_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    TVR_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_DATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    AIP_FIELD_NUMBER: _ClassVar[int]
    ISSUER_APPLICATION_DATA_FIELD_NUMBER: _ClassVar[int]
    arqc: bytes
    atc: bytes
    unpredictable_number: bytes
    pan_sequence_number: str
    amount_authorised: bytes
    amount_other: bytes
    terminal_country_code: bytes
    tvr: bytes
    transaction_currency_code: bytes
    transaction_date: bytes
    transaction_type: bytes
    aip: bytes
    issuer_application_data: bytes
    def __init__(self, arqc: _Optional[bytes] = ..., atc: _Optional[bytes] = ..., unpredictable_number: _Optional[bytes] = ..., pan_sequence_number: _Optional[str] = ..., amount_authorised: _Optional[bytes] = ..., amount_other: _Optional[bytes] = ..., terminal_country_code: _Optional[bytes] = ..., tvr: _Optional[bytes] = ..., transaction_currency_code: _Optional[bytes] = ..., transaction_date: _Optional[bytes] = ..., transaction_type: _Optional[bytes] = ..., aip: _Optional[bytes] = ..., issuer_application_data: _Optional[bytes] = ...) -> None: ...

class NetworkAuthorizationResult(_message.Message):
    __slots__ = ("rrn", "stan", "response_code", "auth_code", "responder", "arpc", "conversion")
    RRN_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    AUTH_CODE_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    ARPC_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    rrn: str
    stan: int
    response_code: _common_pb2.ResponseCode
    auth_code: str
    responder: str
    arpc: bytes
    conversion: Conversion
    def __init__(self, rrn: _Optional[str] = ..., stan: _Optional[int] = ..., response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., auth_code: _Optional[str] = ..., responder: _Optional[str] = ..., arpc: _Optional[bytes] = ..., conversion: _Optional[_Union[Conversion, _Mapping]] = ...) -> None: ...

class NetworkReversal(_message.Message):
    __slots__ = ("original_rrn", "bin", "scheme", "acquirer_id", "amount", "reason")
    ORIGINAL_RRN_FIELD_NUMBER: _ClassVar[int]
    BIN_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    original_rrn: str
    bin: str
    scheme: _common_pb2.CardScheme
    acquirer_id: str
    amount: _common_pb2.Money
    reason: ReversalReason
    def __init__(self, original_rrn: _Optional[str] = ..., bin: _Optional[str] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., acquirer_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., reason: _Optional[_Union[ReversalReason, str]] = ...) -> None: ...

class NetworkCapture(_message.Message):
    __slots__ = ("original_rrn", "bin", "scheme", "acquirer_id", "amount", "mcc")
    ORIGINAL_RRN_FIELD_NUMBER: _ClassVar[int]
    BIN_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    original_rrn: str
    bin: str
    scheme: _common_pb2.CardScheme
    acquirer_id: str
    amount: _common_pb2.Money
    mcc: str
    def __init__(self, original_rrn: _Optional[str] = ..., bin: _Optional[str] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., acquirer_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., mcc: _Optional[str] = ...) -> None: ...

class NetworkRefund(_message.Message):
    __slots__ = ("rrn", "original_rrn", "bin", "scheme", "acquirer_id", "amount", "conversion")
    RRN_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_RRN_FIELD_NUMBER: _ClassVar[int]
    BIN_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    rrn: str
    original_rrn: str
    bin: str
    scheme: _common_pb2.CardScheme
    acquirer_id: str
    amount: _common_pb2.Money
    conversion: Conversion
    def __init__(self, rrn: _Optional[str] = ..., original_rrn: _Optional[str] = ..., bin: _Optional[str] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., acquirer_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., conversion: _Optional[_Union[Conversion, _Mapping]] = ...) -> None: ...

class NetworkAdviceResult(_message.Message):
    __slots__ = ("rrn", "response_code", "responder", "conversion")
    RRN_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    rrn: str
    response_code: _common_pb2.ResponseCode
    responder: str
    conversion: Conversion
    def __init__(self, rrn: _Optional[str] = ..., response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ..., responder: _Optional[str] = ..., conversion: _Optional[_Union[Conversion, _Mapping]] = ...) -> None: ...

class NetworkAdvice(_message.Message):
    __slots__ = ("rrn", "stan", "acquirer_id", "merchant_id", "terminal_id", "merchant_category_code", "amount", "scheme", "pan", "expiry", "auth_code", "reason", "transmission_time_ms")
    RRN_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    AUTH_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRANSMISSION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    rrn: str
    stan: int
    acquirer_id: str
    merchant_id: str
    terminal_id: str
    merchant_category_code: str
    amount: _common_pb2.Money
    scheme: _common_pb2.CardScheme
    pan: str
    expiry: str
    auth_code: str
    reason: AdviceReason
    transmission_time_ms: int
    def __init__(self, rrn: _Optional[str] = ..., stan: _Optional[int] = ..., acquirer_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., terminal_id: _Optional[str] = ..., merchant_category_code: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., scheme: _Optional[_Union[_common_pb2.CardScheme, str]] = ..., pan: _Optional[str] = ..., expiry: _Optional[str] = ..., auth_code: _Optional[str] = ..., reason: _Optional[_Union[AdviceReason, str]] = ..., transmission_time_ms: _Optional[int] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("account_id", "currency", "balance", "credit_limit", "held", "available", "open_holds")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    OPEN_HOLDS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    currency: str
    balance: int
    credit_limit: int
    held: int
    available: int
    open_holds: int
    def __init__(self, account_id: _Optional[str] = ..., currency: _Optional[str] = ..., balance: _Optional[int] = ..., credit_limit: _Optional[int] = ..., held: _Optional[int] = ..., available: _Optional[int] = ..., open_holds: _Optional[int] = ...) -> None: ...

class GetHoldRequest(_message.Message):
    __slots__ = ("rrn",)
    RRN_FIELD_NUMBER: _ClassVar[int]
    rrn: str
    def __init__(self, rrn: _Optional[str] = ...) -> None: ...

class GetHoldResponse(_message.Message):
    __slots__ = ("rrn", "account_id", "state", "amount", "posted", "refunded", "currency")
    RRN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    POSTED_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    rrn: str
    account_id: str
    state: HoldState
    amount: int
    posted: int
    refunded: int
    currency: str
    def __init__(self, rrn: _Optional[str] = ..., account_id: _Optional[str] = ..., state: _Optional[_Union[HoldState, str]] = ..., amount: _Optional[int] = ..., posted: _Optional[int] = ..., refunded: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...
