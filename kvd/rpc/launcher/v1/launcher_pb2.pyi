import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kvd.rpc.launcher.v1 import domain_pb2 as _domain_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("supported_contract_versions", "launcher_version", "libvirt_version", "qemu_version", "emulated", "emulation_reason", "vmi_namespace", "vmi_name", "vmi_uid", "emulation_allowed")
    SUPPORTED_CONTRACT_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LAUNCHER_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIBVIRT_VERSION_FIELD_NUMBER: _ClassVar[int]
    QEMU_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMULATED_FIELD_NUMBER: _ClassVar[int]
    EMULATION_REASON_FIELD_NUMBER: _ClassVar[int]
    VMI_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    VMI_NAME_FIELD_NUMBER: _ClassVar[int]
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    EMULATION_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    supported_contract_versions: _containers.RepeatedScalarFieldContainer[int]
    launcher_version: str
    libvirt_version: str
    qemu_version: str
    emulated: bool
    emulation_reason: str
    vmi_namespace: str
    vmi_name: str
    vmi_uid: str
    emulation_allowed: bool
    def __init__(self, supported_contract_versions: _Optional[_Iterable[int]] = ..., launcher_version: _Optional[str] = ..., libvirt_version: _Optional[str] = ..., qemu_version: _Optional[str] = ..., emulated: _Optional[bool] = ..., emulation_reason: _Optional[str] = ..., vmi_namespace: _Optional[str] = ..., vmi_name: _Optional[str] = ..., vmi_uid: _Optional[str] = ..., emulation_allowed: _Optional[bool] = ...) -> None: ...

class DefineDomainRequest(_message.Message):
    __slots__ = ("vmi_json",)
    VMI_JSON_FIELD_NUMBER: _ClassVar[int]
    vmi_json: bytes
    def __init__(self, vmi_json: _Optional[bytes] = ...) -> None: ...

class DefineDomainResponse(_message.Message):
    __slots__ = ("domain_xml", "domain")
    DOMAIN_XML_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain_xml: str
    domain: _domain_pb2.Domain
    def __init__(self, domain_xml: _Optional[str] = ..., domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ...) -> None: ...

class LaunchDomainRequest(_message.Message):
    __slots__ = ("vmi_uid",)
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    vmi_uid: str
    def __init__(self, vmi_uid: _Optional[str] = ...) -> None: ...

class LaunchDomainResponse(_message.Message):
    __slots__ = ("domain",)
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain: _domain_pb2.Domain
    def __init__(self, domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ...) -> None: ...

class ShutdownDomainRequest(_message.Message):
    __slots__ = ("vmi_uid",)
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    vmi_uid: str
    def __init__(self, vmi_uid: _Optional[str] = ...) -> None: ...

class ShutdownDomainResponse(_message.Message):
    __slots__ = ("domain",)
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain: _domain_pb2.Domain
    def __init__(self, domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ...) -> None: ...

class KillDomainRequest(_message.Message):
    __slots__ = ("vmi_uid",)
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    vmi_uid: str
    def __init__(self, vmi_uid: _Optional[str] = ...) -> None: ...

class KillDomainResponse(_message.Message):
    __slots__ = ("domain",)
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain: _domain_pb2.Domain
    def __init__(self, domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ...) -> None: ...

class DeleteDomainRequest(_message.Message):
    __slots__ = ("vmi_uid",)
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    vmi_uid: str
    def __init__(self, vmi_uid: _Optional[str] = ...) -> None: ...

class DeleteDomainResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseDomainRequest(_message.Message):
    __slots__ = ("vmi_uid",)
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    vmi_uid: str
    def __init__(self, vmi_uid: _Optional[str] = ...) -> None: ...

class PauseDomainResponse(_message.Message):
    __slots__ = ("domain",)
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain: _domain_pb2.Domain
    def __init__(self, domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ...) -> None: ...

class UnpauseDomainRequest(_message.Message):
    __slots__ = ("vmi_uid",)
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    vmi_uid: str
    def __init__(self, vmi_uid: _Optional[str] = ...) -> None: ...

class UnpauseDomainResponse(_message.Message):
    __slots__ = ("domain",)
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain: _domain_pb2.Domain
    def __init__(self, domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ...) -> None: ...

class GetDomainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDomainResponse(_message.Message):
    __slots__ = ("domain_xml", "domain")
    DOMAIN_XML_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain_xml: str
    domain: _domain_pb2.Domain
    def __init__(self, domain_xml: _Optional[str] = ..., domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ...) -> None: ...

class WatchDomainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchDomainResponse(_message.Message):
    __slots__ = ("type", "domain", "observe_time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    OBSERVE_TIME_FIELD_NUMBER: _ClassVar[int]
    type: _domain_pb2.DomainEventType
    domain: _domain_pb2.Domain
    observe_time: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[_Union[_domain_pb2.DomainEventType, str]] = ..., domain: _Optional[_Union[_domain_pb2.Domain, _Mapping]] = ..., observe_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConsoleRequest(_message.Message):
    __slots__ = ("open", "input")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    open: ConsoleOpen
    input: bytes
    def __init__(self, open: _Optional[_Union[ConsoleOpen, _Mapping]] = ..., input: _Optional[bytes] = ...) -> None: ...

class ConsoleOpen(_message.Message):
    __slots__ = ("mode", "replay_bytes", "take_over")
    MODE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_BYTES_FIELD_NUMBER: _ClassVar[int]
    TAKE_OVER_FIELD_NUMBER: _ClassVar[int]
    mode: ConsoleMode
    replay_bytes: int
    take_over: bool
    def __init__(self, mode: _Optional[_Union[ConsoleMode, str]] = ..., replay_bytes: _Optional[int] = ..., take_over: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class VncResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...
