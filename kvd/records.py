"""Small per-object records on disk (one JSON file each, replaced atomically): what a daemon must
remember across its own kill -9 that the API server cannot tell it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar


class _Keyed(Protocol):
    @property
    def uid(self) -> str: ...


R = TypeVar("R", bound=_Keyed)


class Records(Generic[R]):
    """Records of dataclass `kind`, filed under their `uid`."""

    def __init__(self, root: Path, kind: type[R]) -> None:
        self.root = root
        self.kind = kind
        root.mkdir(parents=True, exist_ok=True)

    def get(self, uid: str) -> R | None:
        try:
            raw: dict[str, Any] = json.loads((self.root / f"{uid}.json").read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # a torn write cannot happen (rename), a hand edit can
            return None
        known = {f.name for f in fields(self.kind)}  # type: ignore[arg-type]
        try:
            return self.kind(**{k: v for k, v in raw.items() if k in known})
        except TypeError:  # a field missing
            return None

    def put(self, record: R) -> None:
        path = self.root / f"{record.uid}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))  # type: ignore[call-overload]
        os.replace(tmp, path)

    def remove(self, uid: str) -> None:
        (self.root / f"{uid}.json").unlink(missing_ok=True)

    def all(self) -> list[R]:
        found = []
        for path in sorted(self.root.glob("*.json")):
            record = self.get(path.stem)
            if record is not None:
                found.append(record)
        return found
