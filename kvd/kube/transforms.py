"""Informer transforms (`Informer(transform=...)`): what a cache need not keep, and keeping the
rest smaller. Each edits the object in place and is idempotent (see `informer.Transform`).

A cached object is the server's JSON decoded into dicts and strings, 6 to 8 times its wire
size, and each object's keys are strings of their own (`json` shares a key string only within one
document, and every watch event is one). `compact` makes every key the one interned string, so
the thousands of cached objects share one `"metadata"`, one `"creationTimestamp"`, ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from kvd.kube.client import Json

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SHORT = 24
"""String values up to this length are interned too: the ones that repeat across objects
("True", "Running", "kubevirt.io/v1", "compute", ...). Long ones (messages, uids) stay as
they are."""


def strip_common(obj: Json) -> None:
    """Drop `metadata.managedFields` (the server's field ownership: no controller reads it) and
    the `last-applied-configuration` annotation (`kubectl apply`'s copy of the whole object)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)


def keep_only(obj: Json, field: str, wanted: Iterable[str]) -> None:
    """Keep only the `wanted` keys of `obj[field]` (a dict), when there is one."""
    part = obj.get(field)
    if isinstance(part, dict):
        keep = set(wanted)
        for key in [k for k in part if k not in keep]:
            del part[key]


def compact(value: Any) -> None:
    """Intern every dict key under `value`, and short string values, in place."""
    if isinstance(value, dict):
        items = [(_intern(k), _compacted(v)) for k, v in value.items()]
        value.clear()
        value.update(items)
    elif isinstance(value, list):
        value[:] = [_compacted(v) for v in value]


def _compacted(value: Any) -> Any:
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= SHORT else value
    compact(value)
    return value


def _intern(key: Any) -> Any:
    return sys.intern(key) if isinstance(key, str) else key


def default(obj: Json) -> None:
    """What every controller cache applies: `strip_common`, then `compact`."""
    strip_common(obj)
    compact(obj)
