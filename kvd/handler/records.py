"""What the handler keeps on disk per VMI it drives, so that after its own kill -9 it finds every
launcher again — also those whose VMI was deleted meanwhile — and the start of a grace period
is not granted twice."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from kvd import records
from kvd.api.defaults import DEFAULT_GRACE_PERIOD_SECONDS


@dataclass(frozen=True, kw_only=True)
class VMIRecord:
    uid: str
    namespace: str
    name: str
    pod_uid: str
    socket: str
    grace_seconds: int = DEFAULT_GRACE_PERIOD_SECONDS
    shutdown_requested_at: float | None = None  # wall clock of the first ShutdownDomain
    ever_ran: bool = False
    ended_state: int | None = None  # how the domain ended (launcher DomainState), once seen
    ended_reason: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def with_shutdown(self, at: float) -> VMIRecord:
        return replace(self, shutdown_requested_at=at)

    def ran(self) -> VMIRecord:
        return replace(self, ever_ran=True)

    def end(self, state: int, reason: int) -> VMIRecord:
        return replace(self, ended_state=state, ended_reason=reason, ever_ran=True)


def open_records(root: Path) -> records.Records[VMIRecord]:
    return records.Records(root, VMIRecord)
