from payswitch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LatencyDistribution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LATENCY_DISTRIBUTION_UNSPECIFIED: _ClassVar[LatencyDistribution]
    LATENCY_DISTRIBUTION_FIXED: _ClassVar[LatencyDistribution]
    LATENCY_DISTRIBUTION_UNIFORM: _ClassVar[LatencyDistribution]
    LATENCY_DISTRIBUTION_LOGNORMAL: _ClassVar[LatencyDistribution]

class DropMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DROP_MODE_UNSPECIFIED: _ClassVar[DropMode]
    DROP_MODE_ABORT: _ClassVar[DropMode]
    DROP_MODE_HOLD: _ClassVar[DropMode]
LATENCY_DISTRIBUTION_UNSPECIFIED: LatencyDistribution
LATENCY_DISTRIBUTION_FIXED: LatencyDistribution
LATENCY_DISTRIBUTION_UNIFORM: LatencyDistribution
LATENCY_DISTRIBUTION_LOGNORMAL: LatencyDistribution
DROP_MODE_UNSPECIFIED: DropMode
DROP_MODE_ABORT: DropMode
DROP_MODE_HOLD: DropMode

class LatencyFault(_message.Message):
    __slots__ = ("distribution", "ms", "min_ms", "max_ms", "median_ms", "p99_ms", "rate")
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    distribution: LatencyDistribution
    ms: float
    min_ms: float
    max_ms: float
    median_ms: float
    p99_ms: float
    rate: float
    def __init__(self, distribution: _Optional[_Union[LatencyDistribution, str]] = ..., ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., median_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., rate: _Optional[float] = ...) -> None: ...

class FailFault(_message.Message):
    __slots__ = ("rate", "grpc_status", "response_code")
    RATE_FIELD_NUMBER: _ClassVar[int]
    GRPC_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    rate: float
    grpc_status: int
    response_code: _common_pb2.ResponseCode
    def __init__(self, rate: _Optional[float] = ..., grpc_status: _Optional[int] = ..., response_code: _Optional[_Union[_common_pb2.ResponseCode, str]] = ...) -> None: ...

class DropFault(_message.Message):
    __slots__ = ("rate", "mode")
    RATE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    rate: float
    mode: DropMode
    def __init__(self, rate: _Optional[float] = ..., mode: _Optional[_Union[DropMode, str]] = ...) -> None: ...

class FaultSpec(_message.Message):
    __slots__ = ("latency", "fail", "drop", "operations", "seed")
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    DROP_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    latency: LatencyFault
    fail: FailFault
    drop: DropFault
    operations: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    def __init__(self, latency: _Optional[_Union[LatencyFault, _Mapping]] = ..., fail: _Optional[_Union[FailFault, _Mapping]] = ..., drop: _Optional[_Union[DropFault, _Mapping]] = ..., operations: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ...) -> None: ...

class SetFaultsRequest(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: FaultSpec
    def __init__(self, faults: _Optional[_Union[FaultSpec, _Mapping]] = ...) -> None: ...

class SetFaultsResponse(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class ClearFaultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClearFaultsResponse(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...
