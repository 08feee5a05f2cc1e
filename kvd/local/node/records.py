"""What the node must remember about a pod across its own restart, one small JSON file per pod.

The runtime's state (processes, exit files, network allocations) survives a node restart on its
own; this adds what only the node knows: which pod a uid belongs to (to find the object again, or
notice it is gone), when the node first accepted it (`status.startTime`), and when termination
began, so a grace period started before a restart is not granted twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path


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


class Records:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, uid: str) -> Record | None:
        try:
            return Record(**json.loads((self.root / f"{uid}.json").read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):  # a torn write cannot happen (rename), a hand edit can
            return None

    def put(self, record: Record) -> None:
        path = self.root / f"{record.uid}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, path)

    def remove(self, uid: str) -> None:
        (self.root / f"{uid}.json").unlink(missing_ok=True)

    def all(self) -> list[Record]:
        found = []
        for path in sorted(self.root.glob("*.json")):
            record = self.get(path.stem)
            if record is not None:
                found.append(record)
        return found
