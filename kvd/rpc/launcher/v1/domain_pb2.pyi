import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DomainState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOMAIN_STATE_UNSPECIFIED: _ClassVar[DomainState]
    DOMAIN_STATE_NOSTATE: _ClassVar[DomainState]
    DOMAIN_STATE_RUNNING: _ClassVar[DomainState]
    DOMAIN_STATE_BLOCKED: _ClassVar[DomainState]
    DOMAIN_STATE_PAUSED: _ClassVar[DomainState]
    DOMAIN_STATE_SHUTTING_DOWN: _ClassVar[DomainState]
    DOMAIN_STATE_SHUTOFF: _ClassVar[DomainState]
    DOMAIN_STATE_CRASHED: _ClassVar[DomainState]
    DOMAIN_STATE_PMSUSPENDED: _ClassVar[DomainState]

class DomainStateReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOMAIN_STATE_REASON_UNSPECIFIED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_UNKNOWN: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_NON_EXISTENT: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_BOOTED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_UNPAUSED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_MIGRATED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_RESTORED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_WAKEUP: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_PAUSED_BY_USER: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_IO_ERROR: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_WATCHDOG: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_STARTING_UP: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_PAUSED_FOR_MIGRATION: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_PAUSED_FOR_SAVE: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_SHUTDOWN_REQUESTED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_SHUTDOWN: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_DESTROYED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_CRASHED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_PANICKED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_FAILED_TO_START: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_SAVED: _ClassVar[DomainStateReason]
    DOMAIN_STATE_REASON_FROM_SNAPSHOT: _ClassVar[DomainStateReason]

class DomainEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOMAIN_EVENT_TYPE_UNSPECIFIED: _ClassVar[DomainEventType]
    DOMAIN_EVENT_TYPE_INITIAL: _ClassVar[DomainEventType]
    DOMAIN_EVENT_TYPE_DEFINED: _ClassVar[DomainEventType]
    DOMAIN_EVENT_TYPE_STATE_CHANGED: _ClassVar[DomainEventType]
    DOMAIN_EVENT_TYPE_UPDATED: _ClassVar[DomainEventType]
    DOMAIN_EVENT_TYPE_REBOOTED: _ClassVar[DomainEventType]
    DOMAIN_EVENT_TYPE_DELETED: _ClassVar[DomainEventType]
DOMAIN_STATE_UNSPECIFIED: DomainState
DOMAIN_STATE_NOSTATE: DomainState
DOMAIN_STATE_RUNNING: DomainState
DOMAIN_STATE_BLOCKED: DomainState
DOMAIN_STATE_PAUSED: DomainState
DOMAIN_STATE_SHUTTING_DOWN: DomainState
DOMAIN_STATE_SHUTOFF: DomainState
DOMAIN_STATE_CRASHED: DomainState
DOMAIN_STATE_PMSUSPENDED: DomainState
DOMAIN_STATE_REASON_UNSPECIFIED: DomainStateReason
DOMAIN_STATE_REASON_UNKNOWN: DomainStateReason
DOMAIN_STATE_REASON_NON_EXISTENT: DomainStateReason
DOMAIN_STATE_REASON_BOOTED: DomainStateReason
DOMAIN_STATE_REASON_UNPAUSED: DomainStateReason
DOMAIN_STATE_REASON_MIGRATED: DomainStateReason
DOMAIN_STATE_REASON_RESTORED: DomainStateReason
DOMAIN_STATE_REASON_WAKEUP: DomainStateReason
DOMAIN_STATE_REASON_PAUSED_BY_USER: DomainStateReason
DOMAIN_STATE_REASON_IO_ERROR: DomainStateReason
DOMAIN_STATE_REASON_WATCHDOG: DomainStateReason
DOMAIN_STATE_REASON_STARTING_UP: DomainStateReason
DOMAIN_STATE_REASON_PAUSED_FOR_MIGRATION: DomainStateReason
DOMAIN_STATE_REASON_PAUSED_FOR_SAVE: DomainStateReason
DOMAIN_STATE_REASON_SHUTDOWN_REQUESTED: DomainStateReason
DOMAIN_STATE_REASON_SHUTDOWN: DomainStateReason
DOMAIN_STATE_REASON_DESTROYED: DomainStateReason
DOMAIN_STATE_REASON_CRASHED: DomainStateReason
DOMAIN_STATE_REASON_PANICKED: DomainStateReason
DOMAIN_STATE_REASON_FAILED_TO_START: DomainStateReason
DOMAIN_STATE_REASON_SAVED: DomainStateReason
DOMAIN_STATE_REASON_FROM_SNAPSHOT: DomainStateReason
DOMAIN_EVENT_TYPE_UNSPECIFIED: DomainEventType
DOMAIN_EVENT_TYPE_INITIAL: DomainEventType
DOMAIN_EVENT_TYPE_DEFINED: DomainEventType
DOMAIN_EVENT_TYPE_STATE_CHANGED: DomainEventType
DOMAIN_EVENT_TYPE_UPDATED: DomainEventType
DOMAIN_EVENT_TYPE_REBOOTED: DomainEventType
DOMAIN_EVENT_TYPE_DELETED: DomainEventType

class Domain(_message.Message):
    __slots__ = ("name", "uuid", "state", "reason", "emulated", "interfaces", "guest_os_info", "metadata")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EMULATED_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    GUEST_OS_INFO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    uuid: str
    state: DomainState
    reason: DomainStateReason
    emulated: bool
    interfaces: _containers.RepeatedCompositeFieldContainer[DomainInterface]
    guest_os_info: GuestOsInfo
    metadata: DomainMetadata
    def __init__(self, name: _Optional[str] = ..., uuid: _Optional[str] = ..., state: _Optional[_Union[DomainState, str]] = ..., reason: _Optional[_Union[DomainStateReason, str]] = ..., emulated: _Optional[bool] = ..., interfaces: _Optional[_Iterable[_Union[DomainInterface, _Mapping]]] = ..., guest_os_info: _Optional[_Union[GuestOsInfo, _Mapping]] = ..., metadata: _Optional[_Union[DomainMetadata, _Mapping]] = ...) -> None: ...

class DomainInterface(_message.Message):
    __slots__ = ("name", "mac_address", "ip_addresses", "guest_interface_name")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    GUEST_INTERFACE_NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac_address: str
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    guest_interface_name: str
    def __init__(self, name: _Optional[str] = ..., mac_address: _Optional[str] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., guest_interface_name: _Optional[str] = ...) -> None: ...

class GuestOsInfo(_message.Message):
    __slots__ = ("id", "name", "pretty_name", "version", "version_id", "kernel_release", "kernel_version", "machine")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRETTY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MACHINE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    pretty_name: str
    version: str
    version_id: str
    kernel_release: str
    kernel_version: str
    machine: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., pretty_name: _Optional[str] = ..., version: _Optional[str] = ..., version_id: _Optional[str] = ..., kernel_release: _Optional[str] = ..., kernel_version: _Optional[str] = ..., machine: _Optional[str] = ...) -> None: ...

class DomainMetadata(_message.Message):
    __slots__ = ("vmi_uid", "termination_grace_period", "shutdown_request_time")
    VMI_UID_FIELD_NUMBER: _ClassVar[int]
    TERMINATION_GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_REQUEST_TIME_FIELD_NUMBER: _ClassVar[int]
    vmi_uid: str
    termination_grace_period: _duration_pb2.Duration
    shutdown_request_time: _timestamp_pb2.Timestamp
    def __init__(self, vmi_uid: _Optional[str] = ..., termination_grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., shutdown_request_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
