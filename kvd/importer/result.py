"""The importer's outcome, as one JSON log line the DV controller reads back from the pod's log.

`{"importer": "succeeded"|"failed", "message": ..., "retryable": bool}`; a failure that retrying
cannot mend (an HTTP 4xx other than 408/429, a refused image) says so, and the controller fails
the DataVolume at once instead of restarting the pod.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KEY = "importer"


class ImportFailed(Exception):
    """The import cannot complete; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    message: str
    retryable: bool = False

    def line(self) -> str:
        return json.dumps(
            {
                KEY: "succeeded" if self.succeeded else "failed",
                "message": self.message,
                "retryable": self.retryable,
            }
        )


def parse(log: str) -> Outcome | None:
    """The outcome in a pod's log: its last line that is one; None if it has none."""
    for raw in reversed(log.splitlines()):
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            data: Any = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get(KEY) in ("succeeded", "failed"):
            return Outcome(
                succeeded=data[KEY] == "succeeded",
                message=str(data.get("message") or ""),
                retryable=bool(data.get("retryable")),
            )
    return None
