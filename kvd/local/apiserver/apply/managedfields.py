"""`metadata.managedFields` on the wire, and the rules kube applies to the list as a whole.

An entry is `{manager, operation, apiVersion, time, fieldsType: FieldsV1, fieldsV1,
subresource}`. Entries are read into `Managers` (one per `updater.Manager` identity), written
back sorted as kube sorts them (appliers first, then oldest first, then by manager name), and
no more than `MAX_UPDATE_MANAGERS` update entries are kept: the oldest are merged into one
`ancient-changes` entry per API version.
"""

from __future__ import annotations

from typing import Any, Final

from kvd.local.apiserver.apply.fieldpath import Set
from kvd.local.apiserver.apply.updater import Manager, Managers, Owned
from kvd.local.apiserver.errors import Cause

MAX_UPDATE_MANAGERS: Final = 10
MAX_MANAGER_LENGTH: Final = 128
MAX_SUBRESOURCE_LENGTH: Final = 256
ANCIENT: Final = "ancient-changes"
OPERATIONS: Final = ("Apply", "Update")


class DecodeError(ValueError):
    """The list is not valid managedFields."""


def is_reset(entries: Any) -> bool:
    """`[]` or `[{}]`: the client asks to clear managedFields (kube's isResetManagedFields)."""
    return isinstance(entries, list) and entries in ([], [{}])


def decode(entries: Any) -> Managers:
    """Read a `metadata.managedFields` list; DecodeError when an entry is malformed."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise DecodeError("managedFields must be a list")
    out: Managers = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DecodeError(f"managed fields entry {i} is not an object")
        operation = entry.get("operation")
        if operation not in OPERATIONS:
            raise DecodeError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion")
        if not isinstance(api_version, str) or not api_version:
            raise DecodeError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType")
        if not fields_type:
            raise DecodeError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise DecodeError(f'invalid fieldsType "{fields_type}" in managed fields entry {i}')
        name, subresource, time = (entry.get(k) for k in ("manager", "subresource", "time"))
        if not isinstance(name or "", str) or not isinstance(subresource or "", str):
            raise DecodeError(f"managed fields entry {i} has a non-string manager or subresource")
        try:
            fields = Set.from_fields(entry.get("fieldsV1") or {})
        except ValueError as exc:
            raise DecodeError(f"error decoding set of managed fields entry {i}: {exc}") from None
        identity = Manager(
            name or "",
            operation,
            "" if operation == "Apply" else api_version,
            subresource or "",
        )
        out[identity] = Owned(fields, api_version, time if isinstance(time, str) else None)
    return out


def encode(managers: Managers) -> list[dict[str, Any]]:
    """Entries in kube's order; empty sets are not written."""
    entries = []
    for manager, owned in managers.items():
        if owned.fields.empty():
            continue
        entry: dict[str, Any] = {
            "manager": manager.name,
            "operation": manager.operation,
            "apiVersion": owned.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": owned.fields.to_fields(),
        }
        if owned.time is not None:
            entry["time"] = owned.time
        if manager.subresource:
            entry["subresource"] = manager.subresource
        entries.append(entry)
    entries.sort(
        key=lambda e: (
            e["operation"],
            e.get("time") or "",
            e["manager"],
            e["apiVersion"],
            e.get("subresource", ""),
        )
    )
    return entries


def cap(managers: Managers, limit: int = MAX_UPDATE_MANAGERS) -> Managers:
    """At most `limit` update entries: the oldest merge into `ancient-changes`, one per version."""
    updaters = [m for m in managers if m.operation == "Update"]
    if len(updaters) <= limit:
        return managers
    updaters.sort(key=lambda m: (managers[m].time or "", m.name, m.api_version, m.subresource))
    out = dict(managers)
    count = len(updaters)
    first: dict[str, Manager] = {}
    for manager in updaters:
        if count <= limit:
            break
        owned = out[manager]
        version = owned.api_version
        if version not in first:
            first[version] = manager
            continue
        bucket = Manager(ANCIENT, "Update", version)
        if bucket not in out:
            out[bucket] = out.pop(first[version])
        out[bucket] = Owned(out[bucket].fields.union(owned.fields), version, owned.time)
        del out[manager]
        count -= 1
    return out


def manager_causes(name: str, path: str) -> list[Cause]:
    """kube's ValidateFieldManager: at most 128 bytes, printable characters only."""
    causes = []
    if len(name.encode()) > MAX_MANAGER_LENGTH:
        causes.append(
            Cause(
                "FieldValueTooLong",
                f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes",
                path,
            )
        )
    for i, ch in enumerate(name):
        if not ch.isprintable():  # Go's unicode.IsPrint: only the ASCII space of the spaces
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": invalid character U+{ord(ch):04X} (at position {i})',
                    path,
                )
            )
    return causes


def validation_causes(entries: Any) -> list[Cause]:
    """kube's ValidateManagedFields, on the list a write is about to store."""
    if not isinstance(entries, list):
        return []
    causes: list[Cause] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        at = f"metadata.managedFields[{i}]"
        operation = entry.get("operation")
        if operation not in OPERATIONS:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{operation or ""}": must be `Apply` or `Update`',
                    f"{at}.operation",
                )
            )
        fields_type = entry.get("fieldsType")
        if fields_type and fields_type != "FieldsV1":
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{fields_type}": must be `FieldsV1`',
                    f"{at}.fieldsType",
                )
            )
        causes += manager_causes(str(entry.get("manager") or ""), f"{at}.manager")
        if len(str(entry.get("subresource") or "")) > MAX_SUBRESOURCE_LENGTH:
            causes.append(
                Cause(
                    "FieldValueTooLong",
                    f"Too long: may not be more than {MAX_SUBRESOURCE_LENGTH} bytes",
                    f"{at}.subresource",
                )
            )
    return causes
