"""The namespace controller: empties a Terminating namespace, then lets it go.

As kube-controller-manager's does, for each namespace being deleted that still holds the
`kubernetes` finalizer in its spec: delete every object in it (each through `deletion.Deleter`,
so its finalizers and a bound pod's grace period are honoured), count what remains, and write
the conditions kube writes (`NamespaceDeletionContentFailure`, `NamespaceContentRemaining`,
`NamespaceFinalizersRemaining`, and the two discovery ones, always fine here) with kube's
reasons and messages. Once nothing remains, drop the finalizer; the namespace goes when no
other finalizer holds it.

Event-driven from the store: a change of a terminating namespace, or of anything inside one
(an object whose finalizer was removed, a pod its node confirmed gone), marks the namespace
for another pass, made once the events pending have been read. A pass every `RECHECK_SECONDS`
and one at start (a restart in the middle of a deletion) catch anything else.
"""

from __future__ import annotations

import collections
import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors, meta, namespaces
from kvd.local.apiserver.deletion import Deleter
from kvd.local.apiserver.objects import Target
from kvd.local.apiserver.registry import VIRTUAL, ResourceDef
from kvd.local.apiserver.store import Conflict, Event, NotFound

log = logs.get_logger(__name__)

RECHECK_SECONDS = 30.0
# kube's conditions of a namespace being deleted: (type, reason and message when all is well)
_CONDITIONS = (
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
)


class NamespaceController:
    def __init__(self, deleter: Deleter) -> None:
        self.deleter = deleter
        self.store = deleter.store
        self.registry = deleter.registry
        self.terminating: set[str] = set()

    async def run(self) -> None:
        since = self.store.revision
        items, _ = self.store.list(namespaces.KEY, None)
        dirty = {ns["metadata"]["name"] for ns in items if ns["metadata"].get("deletionTimestamp")}
        self.terminating = set(dirty)
        watcher = self.store.watch(None, None, since)
        try:
            while True:
                for name in sorted(dirty):
                    self.sync(name)
                dirty.clear()
                event = await watcher.next(timeout=RECHECK_SECONDS)
                if event is None:
                    dirty.update(self.terminating)
                while event is not None:  # read what is pending, then one pass per namespace
                    dirty.update(self._concerns(event))
                    event = await watcher.next(timeout=0)
        finally:
            watcher.close()

    def _concerns(self, event: Event) -> set[str]:
        """The terminating namespaces this event may let go further."""
        if event.key == namespaces.KEY:
            if event.type != "DELETED" and event.object["metadata"].get("deletionTimestamp"):
                self.terminating.add(event.name)
                return {event.name}
            self.terminating.discard(event.name)
            return set()
        return {event.namespace} & self.terminating

    def sync(self, name: str) -> None:
        """One pass over a namespace being deleted."""
        try:
            self._sync(name)
        except Exception:
            log.exception("namespace_deletion_failed", namespace=name)

    def _sync(self, name: str) -> None:
        ns = self.store.get(namespaces.KEY, "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            self.terminating.discard(name)
            return
        if namespaces.FINALIZER not in namespaces.spec_finalizers(ns):
            self._write(ns, ns)  # finalized already: the phase and a removal, if nothing holds it
            return
        content = self._delete_content(name)
        updated = copy.deepcopy(ns)
        status = updated.setdefault("status", {})
        status["phase"] = namespaces.TERMINATING
        status["conditions"] = content.conditions(status.get("conditions") or [])
        if not content.remaining:
            spec = updated.setdefault("spec", {})
            spec["finalizers"] = [
                f for f in namespaces.spec_finalizers(updated) if f != namespaces.FINALIZER
            ]
            if not spec["finalizers"]:
                del spec["finalizers"]
            log.info("namespace_emptied", namespace=name)
        self._write(ns, updated)

    def _delete_content(self, namespace: str) -> Content:
        content = Content()
        for r in self._namespaced():
            items, _ = self.store.list(r.key, namespace)
            for item in items:
                if item["metadata"].get("deletionTimestamp"):
                    continue  # being deleted: its finalizers or its node decide when it goes
                t = Target(r, r.storage_version, namespace, item["metadata"]["name"])
                try:
                    self.deleter.delete(t, {"propagationPolicy": "Background"}, dry_run=False)
                except errors.APIError as exc:
                    if exc.code not in (404, 405):
                        content.errors.append(f"{exc}")
            left, _ = self.store.list(r.key, namespace)
            if left:
                content.count(r, namespace, left)
        return content

    def _namespaced(self) -> list[ResourceDef]:
        """Every namespaced resource once: the views of another's objects are left out."""
        return [
            r
            for r in self.registry.all()
            if r.namespaced and r.plural not in VIRTUAL and not r.is_view
        ]

    def _write(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Store the namespace's new state, or remove it when being deleted and unheld."""
        name = old["metadata"]["name"]
        expected = int(old["metadata"]["resourceVersion"])
        with contextlib.suppress(Conflict, NotFound):  # changed meanwhile: its event comes next
            if namespaces.removable(new):
                self.store.delete(namespaces.KEY, "", name, expected=expected)
                self.terminating.discard(name)
                log.info("namespace_deleted", namespace=name)
                return
            new.setdefault("status", {})["phase"] = namespaces.TERMINATING
            self.store.update(namespaces.KEY, "", name, new, expected=expected)


@dataclass
class Content:
    """What one pass found in a namespace: the errors, and what remains, by resource and by
    finalizer, for the conditions."""

    errors: list[str] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)  # "pods.": count
    finalizers: collections.Counter[str] = field(default_factory=collections.Counter)

    def count(self, r: ResourceDef, namespace: str, left: list[dict[str, Any]]) -> None:
        self.remaining[f"{r.plural}.{r.group}"] = len(left)
        for item in left:
            self.finalizers.update(item["metadata"].get("finalizers") or [])
        # what is neither held by a finalizer nor waiting for its grace should have gone
        if not any(_on_its_way(item) for item in left):
            version = f"{r.group}/{r.storage_version}" if r.group else f"/{r.storage_version}"
            self.errors.append(
                f"unexpected items still remain in namespace: {namespace} for gvr: "
                f"{version}, Resource={r.plural}"
            )

    def conditions(self, old: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """kube's five deletion conditions, keeping each one's transition time until its
        status changes."""
        failed: dict[str, tuple[str, str]] = {}
        if self.errors:
            failed["NamespaceDeletionContentFailure"] = (
                "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(self.errors)} remaining: "
                + ", ".join(sorted(self.errors)),
            )
        if self.remaining:
            listed = sorted(f"{r} has {n} resource instances" for r, n in self.remaining.items())
            failed["NamespaceContentRemaining"] = (
                "SomeResourcesRemain",
                "Some resources are remaining: " + ", ".join(listed),
            )
        if self.finalizers:
            listed = sorted(f"{f} in {n} resource instances" for f, n in self.finalizers.items())
            failed["NamespaceFinalizersRemaining"] = (
                "SomeFinalizersRemain",
                "Some content in the namespace has finalizers remaining: " + ", ".join(listed),
            )
        out = [dict(c) for c in old if isinstance(c, dict)]
        for kind, ok_reason, ok_message in _CONDITIONS:
            reason, message = failed.get(kind, (ok_reason, ok_message))
            status = "True" if kind in failed else "False"
            condition = next((c for c in out if c.get("type") == kind), None)
            if condition is None:
                condition = {"type": kind}
                out.append(condition)
            if condition.get("status") != status or not condition.get("lastTransitionTime"):
                condition["lastTransitionTime"] = meta.now()
            condition.update(status=status, reason=reason, message=message)
        return out


def _on_its_way(item: dict[str, Any]) -> bool:
    """Held by a finalizer, or marked and waiting for its grace period (a bound pod)."""
    metadata = item["metadata"]
    return bool(metadata.get("finalizers")) or bool(metadata.get("deletionTimestamp"))
