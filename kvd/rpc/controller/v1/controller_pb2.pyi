import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsoleMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSOLE_MODE_UNSPECIFIED: _ClassVar[ConsoleMode]
    CONSOLE_MODE_READ_ONLY: _ClassVar[ConsoleMode]
    CONSOLE_MODE_READ_WRITE: _ClassVar[ConsoleMode]
CONSOLE_MODE_UNSPECIFIED: ConsoleMode
CONSOLE_MODE_READ_ONLY: ConsoleMode
CONSOLE_MODE_READ_WRITE: ConsoleMode

class StartVirtualMachineRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class StartVirtualMachineResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopVirtualMachineRequest(_message.Message):
    __slots__ = ("namespace", "name", "grace_period", "force")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    grace_period: _duration_pb2.Duration
    force: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., force: _Optional[bool] = ...) -> None: ...

class StopVirtualMachineResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestartVirtualMachineRequest(_message.Message):
    __slots__ = ("namespace", "name", "grace_period", "force")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    grace_period: _duration_pb2.Duration
    force: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., force: _Optional[bool] = ...) -> None: ...

class RestartVirtualMachineResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseVirtualMachineInstanceRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PauseVirtualMachineInstanceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnpauseVirtualMachineInstanceRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class UnpauseVirtualMachineInstanceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConsoleRequest(_message.Message):
    __slots__ = ("open", "input")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    open: ConsoleOpen
    input: bytes
    def __init__(self, open: _Optional[_Union[ConsoleOpen, _Mapping]] = ..., input: _Optional[bytes] = ...) -> None: ...

class ConsoleOpen(_message.Message):
    __slots__ = ("namespace", "name", "mode", "replay_bytes", "take_over")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_BYTES_FIELD_NUMBER: _ClassVar[int]
    TAKE_OVER_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    mode: ConsoleMode
    replay_bytes: int
    take_over: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., mode: _Optional[_Union[ConsoleMode, str]] = ..., replay_bytes: _Optional[int] = ..., take_over: _Optional[bool] = ...) -> None: ...

class ConsoleResponse(_message.Message):
    __slots__ = ("opened", "output")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    opened: ConsoleOpened
    output: bytes
    def __init__(self, opened: _Optional[_Union[ConsoleOpened, _Mapping]] = ..., output: _Optional[bytes] = ...) -> None: ...

class ConsoleOpened(_message.Message):
    __slots__ = ("mode", "replay_bytes")
    MODE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_BYTES_FIELD_NUMBER: _ClassVar[int]
    mode: ConsoleMode
    replay_bytes: int
    def __init__(self, mode: _Optional[_Union[ConsoleMode, str]] = ..., replay_bytes: _Optional[int] = ...) -> None: ...

class VncRequest(_message.Message):
    __slots__ = ("open", "data")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    open: VncOpen
    data: bytes
    def __init__(self, open: _Optional[_Union[VncOpen, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class VncOpen(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class VncResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...
