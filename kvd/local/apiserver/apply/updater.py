"""Who owns what after a write: structured-merge-diff's Updater, on manager -> field set maps.

Two kinds of write:

* an *update* (create, update, any patch but apply) changed the object; its writer owns what it
  added or modified, on top of what it owned before, and takes those fields from everyone else;
  removed fields leave every manager;
* an *apply* sends the fields its manager wants to own, with their values. The configuration is
  merged into the live object; fields the applier owned last time and leaves out now are removed
  unless another manager owns them; changing a field another manager owns is a *conflict*,
  unless forced, which moves the field to the applier. The applier then owns exactly what it
  sent.

`ignored` is what the endpoint does not write (the status of a kind with a status subresource,
on the main resource): nobody comes to own it and it never conflicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvd.local.apiserver.apply import typed
from kvd.local.apiserver.apply.fieldpath import Path, Set
from kvd.local.apiserver.apply.shapes import Shape


@dataclass(frozen=True, slots=True)
class Manager:
    """A managedFields entry's identity: kube keeps one entry per (name, operation, subresource),
    and for updates per API version too."""

    name: str
    operation: str  # "Apply" | "Update"
    api_version: str = ""  # "" for Apply: an applier is one entry whatever version it used
    subresource: str = ""


@dataclass(slots=True)
class Owned:
    """What one manager owns, in the API version it wrote with, and since when."""

    fields: Set
    api_version: str
    time: str | None = None


Managers = dict[Manager, Owned]


class Conflicts(Exception):
    """The apply would change fields other managers own: (manager, path) pairs."""

    def __init__(self, conflicts: list[tuple[Manager, Path]]) -> None:
        super().__init__(f"{len(conflicts)} conflict(s)")
        self.conflicts = conflicts


def _take(
    managers: Managers,
    comparison: typed.Comparison,
    *,
    writer: Manager,
    force: bool,
) -> Managers:
    """Everyone but the writer loses what the write changed (a conflict unless forced) and
    what it removed."""
    changed = comparison.changed()
    if changed.empty() and comparison.removed.empty():
        return dict(managers)
    conflicts: list[tuple[Manager, Path]] = []
    out: Managers = {}
    for manager, owned in managers.items():
        if manager == writer:
            out[manager] = owned
            continue
        if not owned.fields.intersects(changed) and not owned.fields.intersects(comparison.removed):
            out[manager] = owned  # untouched: kept as it was read
            continue
        taken = owned.fields.intersection(changed)
        if not taken.empty():
            conflicts.extend((manager, path) for path in taken.paths())
        rest = owned.fields.difference(changed).difference(comparison.removed)
        if not rest.empty():
            out[manager] = Owned(rest, owned.api_version, owned.time)
    if conflicts and not force:
        raise Conflicts(conflicts)
    return out


def update(
    managers: Managers,
    live: Any,
    new: Any,
    shape: Shape,
    *,
    writer: Manager,
    api_version: str,
    ignored: Set,
    strip: Set,
    now: Callable[[], str],
    comparison: typed.Comparison | None = None,
) -> Managers:
    """Managers after an update from `live` to `new` (live MISSING for a create); `comparison`
    when the caller compared them already."""
    if comparison is None:
        comparison = typed.compare(live, new, shape)
    comparison.added = comparison.added.recursive_difference(ignored)
    comparison.modified = comparison.modified.recursive_difference(ignored)
    current = comparison.changed().difference(strip)
    out = _take(managers, comparison, writer=Manager("", ""), force=True)
    if current.empty():
        return out  # nothing changed: the writer's entry and its time stay as they were
    previous = out.get(writer)
    fields = current if previous is None else previous.fields.union(current)
    out[writer] = Owned(fields, api_version, now())
    return out


def apply(
    managers: Managers,
    live: Any,
    config: dict[str, Any],
    shape: Shape,
    *,
    applier: Manager,
    api_version: str,
    ignored: Set,
    strip: Set,
    force: bool,
    now: Callable[[], str],
) -> tuple[Any, Managers]:
    """The merged object and the managers after applying `config` to `live` (MISSING when
    the apply creates the object). The object is `live` itself when nothing changed."""
    merged = typed.merge(live, config, shape)
    previous = managers.get(applier)
    applied = typed.to_set(config, shape).recursive_difference(ignored)
    managers = {
        **managers,
        applier: Owned(applied, api_version, previous.time if previous else None),
    }
    if previous is not None and not previous.fields.empty():
        owned = Set()
        for o in managers.values():
            owned = owned.union(o.fields)
        merged = typed.prune(merged, previous.fields, owned, shape)
    comparison = typed.compare(live, merged, shape)
    comparison.added = comparison.added.recursive_difference(ignored)
    comparison.modified = comparison.modified.recursive_difference(ignored)
    managers = _take(managers, comparison, writer=applier, force=force)
    fields = applied.difference(strip)
    unchanged = live is not typed.MISSING and live == merged
    if fields.empty():
        managers.pop(applier, None)
    else:
        managers[applier] = Owned(
            fields, api_version, managers[applier].time if unchanged else now()
        )
    return (live if unchanged else merged), managers
