"""What the node must remember about a pod across its own restart, one small JSON file per pod.

The runtime's state (processes, exit files, network allocations) survives a node restart on its
own; this adds what only the node knows: which pod a uid belongs to (to find the object again, or
notice it is gone), when the node first accepted it (`status.startTime`), and when termination
began, so a grace period started before a restart is not granted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from kvd import records as kvd_records


@dataclass(frozen=True, kw_only=True)
class Record:
    uid: str
    namespace: str
    name: str
    start_time: str
    terminating_since: float | None = None  # wall clock (time.time), survives restarts

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def terminating(self, since: float) -> Record:
        return replace(self, terminating_since=since)


def records(root: Path) -> kvd_records.Records[Record]:
    return kvd_records.Records(root, Record)
