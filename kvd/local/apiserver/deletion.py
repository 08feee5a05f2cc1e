"""Deletion as kube-apiserver does it: preconditions, grace periods, finalizers, owners.

An object with finalizers is not removed: it gets a `deletionTimestamp` and stays until its
finalizers are gone (`objects` removes it on the update that drops the last one). A pod bound
to a node gets a grace period: it is marked and stays until the node confirms with a delete
of grace 0, as the kubelet does. `propagationPolicy` decides what happens to dependents:
Background (default) deletes the owner now and the collector deletes its dependents after;
Foreground keeps the owner (finalizer `foregroundDeletion`) until its dependents are gone;
Orphan (finalizer `orphan`) removes the owner references from the dependents first.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors, meta, namespaces
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.objects import MODIFIED_MESSAGE, Objects, Target
from kvd.local.apiserver.registry import VIRTUAL, ResourceDef
from kvd.local.apiserver.store import Conflict, Event, NotFound, ResourceKey

log = logs.get_logger(__name__)
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


class Deleter:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.store = objects.store
        self.registry = objects.registry

    def delete(self, t: Target, options: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        r = t.resource
        obj = self.store.get(r.key, t.namespace, t.name)
        if obj is None:
            raise errors.not_found(r.group, r.plural, t.name)
        metadata = obj["metadata"]
        _check_preconditions(t, metadata, options.get("preconditions") or {})
        if namespaces.is_namespaces(r):
            marked = self._mark_namespace(t, obj, options, dry_run=dry_run)
            if marked is not None:
                return marked
        return self._delete(t, obj, options, dry_run=dry_run)

    def _delete(
        self, t: Target, obj: dict[str, Any], options: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        r, metadata = t.resource, obj["metadata"]
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        finalizers = list(metadata.get("finalizers") or [])
        if policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if policy == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        grace = self._grace(t, obj, options)
        if dry_run:
            return self.objects.present(t, obj)
        if finalizers or grace > 0:
            if (
                metadata.get("deletionTimestamp")
                and grace > 0
                and finalizers == list(metadata.get("finalizers") or [])
            ):
                return self.objects.present(t, obj)  # already being deleted: nothing changes
            updated = copy.deepcopy(obj)
            updated["metadata"]["finalizers"] = finalizers
            if not metadata.get("deletionTimestamp"):
                updated["metadata"]["deletionTimestamp"] = meta.now()
                updated["metadata"]["deletionGracePeriodSeconds"] = grace
            elif grace < int(metadata.get("deletionGracePeriodSeconds") or 0):
                updated["metadata"]["deletionGracePeriodSeconds"] = grace
            if not finalizers and grace == 0:
                return self._remove(t, obj)
            try:
                stored = self.store.update(
                    r.key, t.namespace, t.name, updated, expected=int(metadata["resourceVersion"])
                )
            except (Conflict, NotFound):
                raise errors.conflict(r.group, r.plural, t.name, MODIFIED_MESSAGE) from None
            return self.objects.present(t, stored)
        return self._remove(t, obj)

    def _mark_namespace(
        self, t: Target, obj: dict[str, Any], options: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any] | None:
        """A namespace's DELETE, as kube's namespace storage does it: the first marks it
        Terminating for the namespace controller to empty; later ones change nothing while its
        spec's finalizers remain. None: the namespace may go the ordinary way."""
        if t.name in namespaces.IMMORTAL:
            raise APIError(
                403,
                "Forbidden",
                f'namespaces "{t.name}" is forbidden: this namespace may not be deleted',
                name=t.name,
                group="",
                kind="namespaces",
            )
        metadata = obj["metadata"]
        if metadata.get("deletionTimestamp"):
            return self.objects.present(t, obj) if namespaces.spec_finalizers(obj) else None
        updated = copy.deepcopy(obj)
        updated["metadata"]["deletionTimestamp"] = meta.now()
        status = updated.get("status")
        updated["status"] = {**(status if isinstance(status, dict) else {})}
        updated["status"]["phase"] = namespaces.TERMINATING
        finalizers = [f for f in metadata.get("finalizers") or [] if f not in (ORPHAN, FOREGROUND)]
        orphan, foreground = _dependents_policy(options, metadata.get("finalizers") or [])
        finalizers += [ORPHAN] * orphan + [FOREGROUND] * foreground
        if finalizers:
            updated["metadata"]["finalizers"] = finalizers
        else:
            updated["metadata"].pop("finalizers", None)
        # a namespace stored before kvd kept kube's finalizer in its spec gets it now, so its
        # content is deleted before it goes, whenever it was made
        spec = updated.setdefault("spec", {})
        if namespaces.FINALIZER not in namespaces.spec_finalizers(updated):
            spec["finalizers"] = [*namespaces.spec_finalizers(updated), namespaces.FINALIZER]
        if dry_run:
            return self.objects.present(t, updated)
        try:
            stored = self.store.update(
                namespaces.KEY, "", t.name, updated, expected=int(metadata["resourceVersion"])
            )
        except (Conflict, NotFound):
            raise errors.conflict("", "namespaces", t.name, MODIFIED_MESSAGE) from None
        return self.objects.present(t, stored)

    def _remove(self, t: Target, obj: dict[str, Any]) -> dict[str, Any]:
        return self.objects.present(t, self.objects.remove(t, obj))

    @staticmethod
    def _grace(t: Target, obj: dict[str, Any], options: dict[str, Any]) -> int:
        """Only pods bound to a node wait for their node; everything else goes at once."""
        if t.resource.group != "" or t.resource.plural != "pods":
            return 0
        if not (obj.get("spec") or {}).get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        requested = options.get("gracePeriodSeconds")
        if requested is None:
            requested = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        return max(0, int(requested))


def _dependents_policy(options: dict[str, Any], finalizers: list[str]) -> tuple[bool, bool]:
    """(orphan, foreground): the finalizers a namespace's DELETE options ask for, as kube's
    namespace storage reads them; with no options, those it has already."""
    orphan_dependents = options.get("orphanDependents")
    policy = options.get("propagationPolicy")
    if orphan_dependents is not None:
        return bool(orphan_dependents), not orphan_dependents
    if policy is not None:
        return policy == "Orphan", policy == "Foreground"
    return ORPHAN in finalizers, FOREGROUND in finalizers


def _check_preconditions(t: Target, metadata: dict[str, Any], pre: dict[str, Any]) -> None:
    r = t.resource
    if pre.get("uid") not in (None, "") and pre["uid"] != metadata.get("uid"):
        raise errors.conflict(
            r.group,
            r.plural,
            t.name,
            f"Precondition failed: UID in precondition: {pre['uid']}, "
            f"UID in object meta: {metadata.get('uid')}",
        )
    expected = pre.get("resourceVersion")
    if expected not in (None, "") and expected != metadata["resourceVersion"]:
        raise errors.conflict(r.group, r.plural, t.name, MODIFIED_MESSAGE)


class Collector:
    """The garbage collector: dependents of deleted owners, foreground and orphan finalizers,
    and the contents of deleted namespaces. Event-driven from the store's watch; a full pass
    at start catches up with what happened while the server was down."""

    def __init__(self, deleter: Deleter) -> None:
        self.deleter = deleter
        self.store = deleter.store
        self.registry = deleter.registry

    async def run(self) -> None:
        since = self.store.revision
        self.sweep()
        watcher = self.store.watch(None, None, since)
        try:
            while True:
                event = await watcher.next(timeout=30.0)
                if event is None:
                    self.sweep()
                    continue
                self._on_event(event)
        finally:
            watcher.close()

    def _on_event(self, event: Event) -> None:
        try:
            metadata = event.object.get("metadata") or {}
            if event.type == "DELETED":
                self._owner_gone(metadata.get("uid"))
                self._recheck_owners(metadata.get("ownerReferences") or [])
                if event.key == namespaces.KEY:
                    # the namespace controller emptied it first; this catches what a forced
                    # /finalize left behind, so a namespace made again starts empty
                    self._empty_namespace(event.name)
            elif metadata.get("deletionTimestamp"):
                self._finalize(event.key, event.namespace, event.name)
            elif event.type == "ADDED" and self._orphaned(metadata):
                self._delete_dependent(event.key, event.object)
        except Exception:
            log.exception("garbage_collection_failed", key=str(event.key), name=event.name)

    def _everything(self) -> Iterator[tuple[ResourceDef, dict[str, Any]]]:
        """Every stored object with its resource: the collector's scans are this simple on
        purpose, since a local cluster holds thousands of objects, not millions."""
        for r in self.registry.all():
            if r.plural in VIRTUAL or r.is_view:
                continue
            items, _ = self.store.list(r.key, None)
            for item in items:
                yield r, item

    def sweep(self) -> None:
        """A full pass: dependents whose owners are all gone, pending finalizers."""
        uids: set[str] = set()
        everything = []
        for r, item in self._everything():
            uids.add(item["metadata"].get("uid", ""))
            everything.append((r, item))
        for r, item in everything:
            refs = item["metadata"].get("ownerReferences") or []
            if refs and not any(ref.get("uid") in uids for ref in refs):
                self._delete_dependent(r.key, item)
            if item["metadata"].get("deletionTimestamp"):
                self._finalize(
                    r.key, item["metadata"].get("namespace", ""), item["metadata"]["name"]
                )

    def _orphaned(self, metadata: dict[str, Any]) -> bool:
        """A new object whose owners are all gone already: made from a stale view of an owner
        deleted a moment before (kube's collector checks each new dependent's owners too).
        An owner whose kind is not served here cannot be looked up: it counts as present."""
        refs = metadata.get("ownerReferences") or []
        return bool(refs) and not any(self._owner_present(ref, metadata) for ref in refs)

    def _owner_present(self, ref: dict[str, Any], dependent: dict[str, Any]) -> bool:
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        owner = next(
            (
                r
                for r in self.registry.all()
                if r.group == group and r.kind == ref.get("kind") and not r.is_view
            ),
            None,
        )
        if owner is None:
            return True
        namespace = dependent.get("namespace", "") if owner.namespaced else ""
        found = self.store.get(owner.key, namespace, str(ref.get("name") or ""))
        return found is not None and found["metadata"].get("uid") == ref.get("uid")

    def _recheck_owners(self, refs: list[dict[str, Any]]) -> None:
        """A dependent is gone: an owner in foreground deletion may be free to go too."""
        uids = {ref.get("uid") for ref in refs}
        if not uids:
            return
        for r, item in self._everything():
            m = item["metadata"]
            if m.get("uid") in uids and m.get("deletionTimestamp"):
                self._finalize(r.key, m.get("namespace", ""), m["name"])

    def _dependents(self, uid: str) -> list[tuple[ResourceKey, dict[str, Any]]]:
        return [
            (r.key, item)
            for r, item in self._everything()
            if any(ref.get("uid") == uid for ref in item["metadata"].get("ownerReferences") or [])
        ]

    def _owner_gone(self, uid: str | None) -> None:
        if not uid:
            return
        for key, item in self._dependents(uid):
            refs = [
                ref
                for ref in item["metadata"].get("ownerReferences") or []
                if ref.get("uid") != uid
            ]
            if refs and self._any_owner_alive(refs):
                self._set_owner_refs(key, item, refs)
            else:
                self._delete_dependent(key, item)

    def _any_owner_alive(self, refs: list[dict[str, Any]]) -> bool:
        wanted = {ref.get("uid") for ref in refs}
        return any(item["metadata"].get("uid") in wanted for _r, item in self._everything())

    def _delete_dependent(self, key: ResourceKey, item: dict[str, Any]) -> None:
        r = self.registry.get(key.group, key.resource)
        if r is None:
            return
        t = Target(
            r, r.storage_version, item["metadata"].get("namespace", ""), item["metadata"]["name"]
        )
        try:
            self.deleter.delete(t, {"propagationPolicy": "Background"}, dry_run=False)
            log.info("garbage_collected", resource=r.plural, name=t.name, namespace=t.namespace)
        except errors.APIError:
            pass  # gone already, or changed: the next event or sweep looks again

    def _set_owner_refs(
        self, key: ResourceKey, item: dict[str, Any], refs: list[dict[str, Any]]
    ) -> None:
        updated = copy.deepcopy(item)
        updated["metadata"]["ownerReferences"] = refs
        if not refs:
            updated["metadata"].pop("ownerReferences")
        with contextlib.suppress(Conflict, NotFound):
            self.store.update(
                key,
                item["metadata"].get("namespace", ""),
                item["metadata"]["name"],
                updated,
                expected=int(item["metadata"]["resourceVersion"]),
            )

    def _finalize(self, key: ResourceKey, namespace: str, name: str) -> None:
        obj = self.store.get(key, namespace, name)
        if obj is None:
            return
        finalizers = list(obj["metadata"].get("finalizers") or [])
        uid = obj["metadata"].get("uid", "")
        if ORPHAN in finalizers:
            for dkey, dep in self._dependents(uid):
                refs = [
                    ref
                    for ref in dep["metadata"].get("ownerReferences") or []
                    if ref.get("uid") != uid
                ]
                self._set_owner_refs(dkey, dep, refs)
            finalizers.remove(ORPHAN)
        elif FOREGROUND in finalizers:
            dependents = self._dependents(uid)
            for dkey, dep in dependents:
                if not dep["metadata"].get("deletionTimestamp"):
                    r = self.registry.get(dkey.group, dkey.resource)
                    if r is not None:
                        t = Target(
                            r,
                            r.storage_version,
                            dep["metadata"].get("namespace", ""),
                            dep["metadata"]["name"],
                        )
                        with contextlib.suppress(errors.APIError):
                            self.deleter.delete(
                                t, {"propagationPolicy": "Foreground"}, dry_run=False
                            )
            if dependents:
                return  # wait for their DELETED events
            finalizers.remove(FOREGROUND)
        else:
            return
        self._write_finalizers(key, obj, finalizers)

    def _write_finalizers(
        self, key: ResourceKey, obj: dict[str, Any], finalizers: list[str]
    ) -> None:
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        held = key == namespaces.KEY and namespaces.spec_finalizers(obj)
        with contextlib.suppress(Conflict, NotFound):
            if finalizers or held:
                updated = copy.deepcopy(obj)
                updated["metadata"]["finalizers"] = finalizers
                self.store.update(
                    key, namespace, name, updated, expected=int(obj["metadata"]["resourceVersion"])
                )
            else:
                self.store.delete(
                    key, namespace, name, expected=int(obj["metadata"]["resourceVersion"])
                )

    def _empty_namespace(self, namespace: str) -> None:
        for r in self.registry.all():
            if not r.namespaced or r.is_view:
                continue
            items, _ = self.store.list(r.key, namespace)
            for item in items:
                t = Target(r, r.storage_version, namespace, item["metadata"]["name"])
                with contextlib.suppress(errors.APIError):
                    self.deleter.delete(t, {"gracePeriodSeconds": 0}, dry_run=False)
