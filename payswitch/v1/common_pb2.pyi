from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ResponseCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_CODE_UNSPECIFIED: _ClassVar[ResponseCode]
    RESPONSE_CODE_APPROVED: _ClassVar[ResponseCode]
    RESPONSE_CODE_DO_NOT_HONOUR: _ClassVar[ResponseCode]
    RESPONSE_CODE_INVALID_TRANSACTION: _ClassVar[ResponseCode]
    RESPONSE_CODE_INVALID_AMOUNT: _ClassVar[ResponseCode]
    RESPONSE_CODE_INVALID_CARD_NUMBER: _ClassVar[ResponseCode]
    RESPONSE_CODE_INSUFFICIENT_FUNDS: _ClassVar[ResponseCode]
    RESPONSE_CODE_EXPIRED_CARD: _ClassVar[ResponseCode]
    RESPONSE_CODE_INCORRECT_PIN: _ClassVar[ResponseCode]
    RESPONSE_CODE_TRANSACTION_NOT_PERMITTED: _ClassVar[ResponseCode]
    RESPONSE_CODE_SUSPECTED_FRAUD: _ClassVar[ResponseCode]
    RESPONSE_CODE_EXCEEDS_AMOUNT_LIMIT: _ClassVar[ResponseCode]
    RESPONSE_CODE_RESTRICTED_CARD: _ClassVar[ResponseCode]
    RESPONSE_CODE_EXCEEDS_FREQUENCY_LIMIT: _ClassVar[ResponseCode]
    RESPONSE_CODE_ISSUER_UNAVAILABLE: _ClassVar[ResponseCode]
    RESPONSE_CODE_DUPLICATE_TRANSMISSION: _ClassVar[ResponseCode]
    RESPONSE_CODE_SYSTEM_MALFUNCTION: _ClassVar[ResponseCode]

class CardScheme(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_SCHEME_UNSPECIFIED: _ClassVar[CardScheme]
    CARD_SCHEME_VISA: _ClassVar[CardScheme]
    CARD_SCHEME_MASTERCARD: _ClassVar[CardScheme]
    CARD_SCHEME_AMEX: _ClassVar[CardScheme]
    CARD_SCHEME_DISCOVER: _ClassVar[CardScheme]
    CARD_SCHEME_JCB: _ClassVar[CardScheme]
    CARD_SCHEME_UNIONPAY: _ClassVar[CardScheme]

class EntryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_MODE_UNSPECIFIED: _ClassVar[EntryMode]
    ENTRY_MODE_CHIP: _ClassVar[EntryMode]
    ENTRY_MODE_CONTACTLESS: _ClassVar[EntryMode]
    ENTRY_MODE_MAGSTRIPE: _ClassVar[EntryMode]
    ENTRY_MODE_MANUAL: _ClassVar[EntryMode]
RESPONSE_CODE_UNSPECIFIED: ResponseCode
RESPONSE_CODE_APPROVED: ResponseCode
RESPONSE_CODE_DO_NOT_HONOUR: ResponseCode
RESPONSE_CODE_INVALID_TRANSACTION: ResponseCode
RESPONSE_CODE_INVALID_AMOUNT: ResponseCode
RESPONSE_CODE_INVALID_CARD_NUMBER: ResponseCode
RESPONSE_CODE_INSUFFICIENT_FUNDS: ResponseCode
RESPONSE_CODE_EXPIRED_CARD: ResponseCode
RESPONSE_CODE_INCORRECT_PIN: ResponseCode
RESPONSE_CODE_TRANSACTION_NOT_PERMITTED: ResponseCode
RESPONSE_CODE_SUSPECTED_FRAUD: ResponseCode
RESPONSE_CODE_EXCEEDS_AMOUNT_LIMIT: ResponseCode
RESPONSE_CODE_RESTRICTED_CARD: ResponseCode
RESPONSE_CODE_EXCEEDS_FREQUENCY_LIMIT: ResponseCode
RESPONSE_CODE_ISSUER_UNAVAILABLE: ResponseCode
RESPONSE_CODE_DUPLICATE_TRANSMISSION: ResponseCode
RESPONSE_CODE_SYSTEM_MALFUNCTION: ResponseCode
CARD_SCHEME_UNSPECIFIED: CardScheme
CARD_SCHEME_VISA: CardScheme
CARD_SCHEME_MASTERCARD: CardScheme
CARD_SCHEME_AMEX: CardScheme
CARD_SCHEME_DISCOVER: CardScheme
CARD_SCHEME_JCB: CardScheme
CARD_SCHEME_UNIONPAY: CardScheme
ENTRY_MODE_UNSPECIFIED: EntryMode
ENTRY_MODE_CHIP: EntryMode
ENTRY_MODE_CONTACTLESS: EntryMode
ENTRY_MODE_MAGSTRIPE: EntryMode
ENTRY_MODE_MANUAL: EntryMode

class Money(_message.Message):
    __slots__ = ("minor_units", "currency")
    MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    minor_units: int
    currency: str
    def __init__(self, minor_units: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...
