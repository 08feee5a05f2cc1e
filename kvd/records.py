"""Small per-object records on disk (one JSON file each, replaced atomically): what a daemon must
remember across its own kill -9 that the API server cannot tell it."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar


class _Keyed(Protocol):
    @property
    def uid(self) -> str: ...


R = TypeVar("R", bound=_Keyed)


class Records(Generic[R]):
    """Records of dataclass `kind`, filed under their `uid`.

    The directory is one process's (a daemon's state dir): it is read once, at the first lookup,
    and then kept in memory and written through, so a lookup reads no file. A daemon looks its
    records up on every pass of a loop (the handler in each reconcile, the node ten times a
    second); read from disk, that was every record file parsed each time: with twenty VMIs
    starting, twenty files per reconcile and hundreds of reconciles a second. Thread-safe."""

    def __init__(self, root: Path, kind: type[R]) -> None:
        self.root = root
        self.kind = kind
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._known: dict[str, R] | None = None  # uid → record, once read

    def get(self, uid: str) -> R | None:
        with self._lock:
            return self._loaded().get(uid)

    def put(self, record: R) -> None:
        path = self.root / f"{record.uid}.json"
        tmp = path.with_suffix(".tmp")
        with self._lock:
            known = self._loaded()
            tmp.write_text(json.dumps(asdict(record)))  # type: ignore[call-overload]
            os.replace(tmp, path)
            known[record.uid] = record

    def remove(self, uid: str) -> None:
        with self._lock:
            known = self._loaded()
            (self.root / f"{uid}.json").unlink(missing_ok=True)
            known.pop(uid, None)

    def all(self) -> list[R]:
        """Every record, by uid."""
        with self._lock:
            known = self._loaded()
            return [known[uid] for uid in sorted(known)]

    def _loaded(self) -> dict[str, R]:
        if self._known is None:
            self._known = {}
            for path in sorted(self.root.glob("*.json")):
                record = self._read(path)
                if record is not None:
                    self._known[record.uid] = record
        return self._known

    def _read(self, path: Path) -> R | None:
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # a torn write cannot happen (rename), a hand edit can
            return None
        known = {f.name for f in fields(self.kind)}  # type: ignore[arg-type]
        try:
            record = self.kind(**{k: v for k, v in raw.items() if k in known})
        except TypeError:  # a field missing
            return None
        # filed under its uid: a file renamed by hand is not another record
        return record if record.uid == path.stem else None
