from payswitch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PresentmentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENTMENT_KIND_UNSPECIFIED: _ClassVar[PresentmentKind]
    PRESENTMENT_KIND_CAPTURE: _ClassVar[PresentmentKind]
    PRESENTMENT_KIND_REFUND: _ClassVar[PresentmentKind]

class PresentmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENTMENT_STATUS_UNSPECIFIED: _ClassVar[PresentmentStatus]
    PRESENTMENT_STATUS_POSTED: _ClassVar[PresentmentStatus]
    PRESENTMENT_STATUS_REJECTED: _ClassVar[PresentmentStatus]
PRESENTMENT_KIND_UNSPECIFIED: PresentmentKind
PRESENTMENT_KIND_CAPTURE: PresentmentKind
PRESENTMENT_KIND_REFUND: PresentmentKind
PRESENTMENT_STATUS_UNSPECIFIED: PresentmentStatus
PRESENTMENT_STATUS_POSTED: PresentmentStatus
PRESENTMENT_STATUS_REJECTED: PresentmentStatus

class SettleRequest(_message.Message):
    __slots__ = ("clearing_path", "report_dir", "now_ms")
    CLEARING_PATH_FIELD_NUMBER: _ClassVar[int]
    REPORT_DIR_FIELD_NUMBER: _ClassVar[int]
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    clearing_path: str
    report_dir: str
    now_ms: int
    def __init__(self, clearing_path: _Optional[str] = ..., report_dir: _Optional[str] = ..., now_ms: _Optional[int] = ...) -> None: ...

class SettleResponse(_message.Message):
    __slots__ = ("report_path", "settled", "rejected")
    REPORT_PATH_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    report_path: str
    settled: int
    rejected: int
    def __init__(self, report_path: _Optional[str] = ..., settled: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class Presentment(_message.Message):
    __slots__ = ("kind", "transaction_id", "rrn", "original_rrn", "mcc", "amount", "authorized_minor")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RRN_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_RRN_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_MINOR_FIELD_NUMBER: _ClassVar[int]
    kind: PresentmentKind
    transaction_id: str
    rrn: str
    original_rrn: str
    mcc: str
    amount: _common_pb2.Money
    authorized_minor: int
    def __init__(self, kind: _Optional[_Union[PresentmentKind, str]] = ..., transaction_id: _Optional[str] = ..., rrn: _Optional[str] = ..., original_rrn: _Optional[str] = ..., mcc: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., authorized_minor: _Optional[int] = ...) -> None: ...

class PresentRequest(_message.Message):
    __slots__ = ("file_id", "acquirer_id", "presentments", "now_ms", "report_dir", "page", "last_page")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    PRESENTMENTS_FIELD_NUMBER: _ClassVar[int]
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    REPORT_DIR_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_PAGE_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    acquirer_id: str
    presentments: _containers.RepeatedCompositeFieldContainer[Presentment]
    now_ms: int
    report_dir: str
    page: int
    last_page: bool
    def __init__(self, file_id: _Optional[str] = ..., acquirer_id: _Optional[str] = ..., presentments: _Optional[_Iterable[_Union[Presentment, _Mapping]]] = ..., now_ms: _Optional[int] = ..., report_dir: _Optional[str] = ..., page: _Optional[int] = ..., last_page: _Optional[bool] = ...) -> None: ...

class PresentmentResult(_message.Message):
    __slots__ = ("transaction_id", "rrn", "status", "flags", "posted_minor", "billing")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RRN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    POSTED_MINOR_FIELD_NUMBER: _ClassVar[int]
    BILLING_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    rrn: str
    status: PresentmentStatus
    flags: _containers.RepeatedScalarFieldContainer[str]
    posted_minor: int
    billing: _common_pb2.Money
    def __init__(self, transaction_id: _Optional[str] = ..., rrn: _Optional[str] = ..., status: _Optional[_Union[PresentmentStatus, str]] = ..., flags: _Optional[_Iterable[str]] = ..., posted_minor: _Optional[int] = ..., billing: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class PresentResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PresentmentResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PresentmentResult, _Mapping]]] = ...) -> None: ...

class ExpireHoldsRequest(_message.Message):
    __slots__ = ("now_ms", "report_dir")
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    REPORT_DIR_FIELD_NUMBER: _ClassVar[int]
    now_ms: int
    report_dir: str
    def __init__(self, now_ms: _Optional[int] = ..., report_dir: _Optional[str] = ...) -> None: ...

class ExpireHoldsResponse(_message.Message):
    __slots__ = ("released_rrns",)
    RELEASED_RRNS_FIELD_NUMBER: _ClassVar[int]
    released_rrns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, released_rrns: _Optional[_Iterable[str]] = ...) -> None: ...
