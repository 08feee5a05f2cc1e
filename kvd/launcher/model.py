"""What the launcher knows about its domain, as immutable values.

The domain manager produces `Snapshot`s; the event dispatcher publishes `Event`s; the gRPC
service encodes both. Enum fields hold the contract's values (kvd.rpc.launcher.v1), which are
plain ints, so these types stay independent of libvirt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kvd.launcher.converter.metadata import DomainMetadata
from kvd.rpc.launcher.v1 import domain_pb2 as pb


@dataclass(frozen=True)
class Identity:
    """The one VMI this launcher serves (its command line)."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Interface:
    name: str
    mac_address: str
    ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    name: str
    uuid: str
    state: pb.DomainState
    reason: pb.DomainStateReason
    emulated: bool
    interfaces: tuple[Interface, ...] = ()
    metadata: DomainMetadata | None = None  # kvd's own state, from the domain's <metadata>

    @property
    def defined(self) -> bool:
        return self.reason != pb.DOMAIN_STATE_REASON_NON_EXISTENT


def absent(name: str, *, emulated: bool) -> Snapshot:
    """The snapshot of a domain that is not defined."""
    return Snapshot(
        name=name,
        uuid="",
        state=pb.DOMAIN_STATE_NOSTATE,
        reason=pb.DOMAIN_STATE_REASON_NON_EXISTENT,
        emulated=emulated,
    )


@dataclass(frozen=True)
class Event:
    type: pb.DomainEventType
    snapshot: Snapshot
    observed_at: datetime = field(compare=False)
