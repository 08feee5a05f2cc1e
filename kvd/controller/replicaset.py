"""The VirtualMachineInstanceReplicaSet controller: keeps `replicas` VMIs of each set running
(KubeVirt's pkg/virt-controller/watch/replicaset).

Level-triggered like the others: set and VMI events only enqueue the set's key; `reconcile`
reads the set and its namespace's VMIs from the caches, lets `replicas` decide, creates and
deletes VMIs, and writes the status (to the status subresource) when it changed.

Never more than asked for: before creating or deleting, the controller records how many it
expects (`kvd.kube.expectations`) and scales again only once the VMI informer has seen them all,
so a cache that lags never makes it create twice. A deleted set's VMIs go with it through their
owner references (the garbage collector); a paused set is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvd import logs, timestamps
from kvd.api import kinds
from kvd.controller import replicas, vmtemplate
from kvd.kube import events, informer
from kvd.kube.client import ApiError, Raw
from kvd.kube.expectations import Expectations

log = logs.get_logger(__name__)

Json = dict[str, Any]

BY_NAMESPACE = "namespace"
CONFLICT_RETRY = 0.5


def namespace_of(obj: Json) -> list[str]:
    return [str(obj["metadata"].get("namespace") or "")]


class ReplicaSetController:
    def __init__(
        self,
        *,
        raw: Raw,
        sets: informer.Informer,
        vmis: informer.Informer,
        recorder: events.Recorder,
        expectations: Expectations | None = None,
        burst: int = replicas.BURST,
    ) -> None:
        self.raw = raw
        self.sets = sets
        self.vmis = vmis
        self.recorder = recorder
        self.expectations = expectations or Expectations()
        self.burst = burst
        vmis.add_index(BY_NAMESPACE, namespace_of)
        sets.add_index(BY_NAMESPACE, namespace_of)

    # --- events -------------------------------------------------------------------------------

    def on_set(self, _kind: str, rs: Json, enqueue: Callable[[str], None]) -> None:
        enqueue(informer.key_of(rs))

    def on_vmi(self, kind: str, vmi: Json, enqueue: Callable[[str], None]) -> None:
        meta = vmi["metadata"]
        ref = vmtemplate.controller_of(vmi)
        if ref is not None:
            if ref.get("kind") != replicas.KIND:
                return
            key = f"{meta['namespace']}/{ref['name']}"
            rs = self.sets.get(key)
            if rs is None or rs["metadata"]["uid"] != ref.get("uid"):
                return
            if kind == "DELETED" or meta.get("deletionTimestamp"):
                self.expectations.deletion_observed(key)
            elif kind == "ADDED":
                self.expectations.creation_observed(key)
            enqueue(key)
            return
        if kind == "DELETED":
            return  # no set cares about an orphan going
        labels = meta.get("labels") or {}
        for rs in self.sets.by_index(BY_NAMESPACE, meta["namespace"]):
            try:
                if replicas.selector(rs).matches(labels):
                    enqueue(informer.key_of(rs))
            except replicas.InvalidReplicaSet:
                continue

    # --- reconcile ----------------------------------------------------------------------------

    def reconcile(self, key: str) -> float | None:
        rs = self.sets.get(key)
        if rs is None:
            self.expectations.delete(key)
            return None
        try:
            chosen = replicas.selector(rs)
        except replicas.InvalidReplicaSet as exc:
            log.error("vmirs_invalid", vmirs=key, error=str(exc))  # the API refuses these
            return None
        meta = rs["metadata"]
        claimed = replicas.claim(rs, self.vmis.by_index(BY_NAMESPACE, meta["namespace"]), chosen)
        released = [self._set_owner(rs, v, owned=False) for v in claimed.release]
        adopted = [self._set_owner(rs, v, owned=True) for v in claimed.adopt]
        if None in released or None in adopted:
            # a VMI changed under the adoption (or went): counting without it could create one
            # too many, so look again once the cache has it
            return CONFLICT_RETRY
        mine = [v for v in claimed.mine if v not in claimed.adopt]
        mine += [a for a in adopted if a is not None]
        running = replicas.active(mine)
        error: tuple[str, str] | None = None
        paused = bool((rs.get("spec") or {}).get("paused"))
        if self.expectations.satisfied(key) and not paused and not meta.get("deletionTimestamp"):
            plan = replicas.scale(rs, running, replicas.finished(mine), burst=self.burst)
            error = self._apply(key, rs, plan)
        try:
            self._write_status(
                key, rs, replicas.status(rs, running, chosen, error=error, now=timestamps.now())
            )
        except ApiError as exc:
            if not exc.conflict:
                raise
            return CONFLICT_RETRY
        if error is not None:
            raise RuntimeError(error[1])  # a retry with back-off, as KubeVirt returns scaleErr
        return None

    def _apply(self, key: str, rs: Json, plan: replicas.Scale) -> tuple[str, str] | None:
        """Create and delete as planned; the first failure as (reason, message)."""
        self.expectations.expect_creations(key, plan.create)
        self.expectations.raise_expectations(key, deletes=len(plan.delete))
        failure: tuple[str, str] | None = None
        namespace = rs["metadata"]["namespace"]
        for _ in range(plan.create):
            try:
                created = self.raw.create(kinds.VMI.path(namespace), replicas.vmi_for(rs))
            except ApiError as exc:
                self.expectations.creation_observed(key)
                self.recorder.event(
                    rs,
                    events.WARNING,
                    "FailedCreate",
                    f"Error creating virtual machine instance: {exc.message}",
                )
                failure = failure or ("FailedCreate", exc.message)
                continue
            name = created["metadata"]["name"]
            log.info("vmi_created", vmirs=key, vmi=name)
            self.recorder.event(
                rs,
                events.NORMAL,
                "SuccessfulCreate",
                f"Started the virtual machine by creating the new virtual machine instance {name}",
            )
        for vmi in plan.delete:
            vmeta = vmi["metadata"]
            try:
                self.raw.delete(
                    kinds.VMI.path(namespace, vmeta["name"]),
                    body={"preconditions": {"uid": vmeta["uid"]}},
                )
            except ApiError as exc:
                self.expectations.deletion_observed(key)
                if exc.not_found:
                    continue
                self.recorder.event(
                    rs,
                    events.WARNING,
                    "FailedDelete",
                    f"Error deleting virtual machine instance {vmeta['name']}: {exc.message}",
                )
                failure = failure or ("FailedDelete", exc.message)
                continue
            log.info("vmi_deleted", vmirs=key, vmi=vmeta["name"], ended=replicas.final(vmi))
            self.recorder.event(
                rs,
                events.NORMAL,
                "SuccessfulDelete",
                "Stopped the virtual machine by deleting the virtual machine instance "
                f"{vmeta['uid']}",
            )
        return failure

    def _set_owner(self, rs: Json, vmi: Json, *, owned: bool) -> Json | None:
        """Adopt (`owned`) or release a VMI; the VMI as patched, None when it changed or went
        meanwhile (its event brings the set back)."""
        meta = vmi["metadata"]
        refs = [
            r for r in meta.get("ownerReferences") or [] if r.get("uid") != rs["metadata"]["uid"]
        ]
        if owned:
            refs.append(vmtemplate.owner_reference(rs))
        patch = {
            "metadata": {
                "ownerReferences": refs or None,
                "resourceVersion": meta["resourceVersion"],
            }
        }
        try:
            patched: Json = self.raw.merge_patch(
                kinds.VMI.path(meta["namespace"], meta["name"]), patch
            )
        except ApiError as exc:
            if exc.not_found or exc.conflict:
                return None
            raise
        log.info(
            "vmi_adopted" if owned else "vmi_released", vmirs=informer.key_of(rs), vmi=meta["name"]
        )
        return patched

    def _write_status(self, key: str, rs: Json, status: Json) -> None:
        old = rs.get("status") or {}
        if status == old:
            return
        changed = {k: v for k, v in status.items() if old.get(k) != v}
        changed.update({k: None for k in old if k not in status})
        meta = rs["metadata"]
        self.raw.merge_patch(
            kinds.VMIRS.path(meta["namespace"], meta["name"]) + "/status",
            {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": changed},
        )
        was_paused = any(c.get("type") == replicas.PAUSED for c in old.get("conditions") or [])
        now_paused = any(c.get("type") == replicas.PAUSED for c in status.get("conditions") or [])
        if was_paused != now_paused:
            reason, message = (
                ("SuccessfulPaused", "Paused") if now_paused else ("SuccessfulResumed", "Resumed")
            )
            self.recorder.event(rs, events.NORMAL, reason, message)
        if status.get("replicas") != old.get("replicas") or status.get("readyReplicas") != old.get(
            "readyReplicas"
        ):
            log.info(
                "vmirs_status",
                vmirs=key,
                replicas=status.get("replicas"),
                ready=status.get("readyReplicas"),
            )
