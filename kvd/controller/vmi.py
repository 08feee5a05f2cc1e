"""The VMI controller: each VMI gets one launcher pod and the phases up to Scheduled.

Level-triggered (CONVENTIONS.md, shape 2): VMI and launcher-pod events only enqueue the VMI's
key; `reconcile(key)` reads both from the informers' caches, asks the pure table
(`kvd.controller.phase`) for the next step, carries it out, and writes what changed in at most
one merge-patch of the VMI (status, the finalizer, the `kubevirt.io/nodeName` label), guarded
by its resourceVersion.

Never two pods for one VMI: before creating a pod the controller records that it expects one
(`kvd.kube.expectations`), and does not act on the VMI again until the pod informer has seen
it, so a reconcile that runs before the cache catches up cannot create a second one. A
restarted (or newly elected) controller starts working only once its pod cache is synced, and
finds the pods its predecessor created by their `kubevirt.io/created-by` label.

What the schema cannot check (the spec as kvd.api validates it on a cluster without kvd's
admission, claims that do not exist, a spec the pod cannot be rendered from) leaves the VMI
Pending with `Synchronized=False` and an Event naming the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvd import logs, timestamps
from kvd.api import keys, kinds, phases
from kvd.api.errors import ValidationError
from kvd.api.vmi import VirtualMachineInstance
from kvd.conditions import condition as make_condition
from kvd.controller import phase, render
from kvd.controller.config import ClusterConfig
from kvd.kube import events, informer
from kvd.kube.client import ApiError, Raw
from kvd.kube.expectations import Expectations

log = logs.get_logger(__name__)

Json = dict[str, Any]

BY_VMI = "vmi-uid"
RETRY_MISSING_CLAIM = 5.0
CONFLICT_RETRY = 0.5  # in case the newer write's event was missed


def created_by(pod: Json) -> list[str]:
    """The index of launcher pods by the uid of their VMI."""
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(keys.CREATED_BY)
    return [value] if value else []


def owner_key(pod: Json) -> str | None:
    """The key of the VMI that owns a launcher pod."""
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "VirtualMachineInstance" and ref.get("controller"):
            return f"{meta.get('namespace')}/{ref['name']}"
    return None


class _NotSynchronized(Exception):
    """The VMI cannot get a pod yet: a `Synchronized=False` condition, and maybe a retry."""

    def __init__(self, reason: str, message: str, *, again: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.again = again


@dataclass(frozen=True, kw_only=True)
class VMIControllerSettings:
    launcher_host_dir: str
    config: Callable[[], ClusterConfig]  # the cluster's settings, now


class VMIController:
    def __init__(
        self,
        *,
        raw: Raw,
        vmis: informer.Informer,
        pods: informer.Informer,
        recorder: events.Recorder,
        settings: VMIControllerSettings,
        expectations: Expectations | None = None,
    ) -> None:
        self.raw = raw
        self.vmis = vmis
        self.pods = pods
        self.recorder = recorder
        self.settings = settings
        self.expectations = expectations or Expectations()
        # key → the resourceVersion our last patch replaced: a cache still showing it is stale
        self._patched_over: dict[str, str] = {}
        pods.add_index(BY_VMI, created_by)

    def on_vmi(self, _kind: str, vmi: Json, enqueue: Callable[[str], None]) -> None:
        enqueue(informer.key_of(vmi))

    def on_pod(self, kind: str, pod: Json, enqueue: Callable[[str], None]) -> None:
        key = owner_key(pod)
        if key is None:
            return
        if kind == "ADDED":
            self.expectations.creation_observed(key)
        elif kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(key)  # marked for deletion is enough
        enqueue(key)

    def pods_of(self, uid: str) -> list[Json]:
        found = self.pods.by_index(BY_VMI, uid)
        return sorted(found, key=lambda p: p["metadata"].get("creationTimestamp") or "")

    # --- reconcile ----------------------------------------------------------------------------

    def reconcile(self, key: str) -> float | None:
        """Make `key`'s pods and status match its phase; returns when to look again."""
        vmi = self.vmis.get(key)
        if vmi is None:
            self.expectations.delete(key)  # its pods go with it (owner references)
            self._patched_over.pop(key, None)
            return None
        if not self.expectations.satisfied(key):
            return 1.0  # the pod informer will wake us when it sees our pod; this is a fallback
        meta, status = vmi["metadata"], vmi.get("status") or {}
        if self._patched_over.get(key) == meta["resourceVersion"]:
            return 1.0  # the cache is older than our last write, whose event brings us back
        self._patched_over.pop(key, None)
        current = status.get("phase") or ""
        pods = self.pods_of(meta["uid"])
        step = phase.decide(
            current,
            [phase.view(p) for p in pods],
            deleting=bool(meta.get("deletionTimestamp")),
        )
        problem: _NotSynchronized | None = None
        if step.create_pod:
            try:
                self._create_pod(key, vmi)
            except _NotSynchronized as exc:
                problem = exc
                step = phase.Step(phase=phases.PENDING, again=exc.again)
        if step.delete_pods:
            self.expectations.expect_deletions(key, len(step.delete_pods))
        for name in step.delete_pods:
            self._delete_pod(key, vmi, name)
        try:
            self._write(vmi, step, problem)
        except ApiError as exc:
            if not exc.conflict:
                raise
            # the cache is behind a newer write (often our own); its event brings the key back
            log.debug("vmi_conflict", vmi=key)
            return CONFLICT_RETRY
        return step.again

    def _create_pod(self, key: str, vmi: Json) -> None:
        config = self.settings.config()
        loaded = _load(vmi)
        claims = self._read_claims(loaded)
        try:
            pod = render.launcher_pod(
                loaded,
                render.RenderConfig(
                    launcher_host_dir=self.settings.launcher_host_dir,
                    image=config.launcher_image,
                    allow_emulation=config.use_emulation,
                    memory_overhead=config.memory_overhead,
                    grace_margin_seconds=config.grace_margin_seconds,
                    cpu_allocation_ratio=config.cpu_allocation_ratio,
                ),
                claims=claims,
            )
        except render.RenderError as exc:
            raise _NotSynchronized("FailedCreate", str(exc)) from None
        namespace = vmi["metadata"]["namespace"]
        self.expectations.expect_creations(key, 1)
        try:
            created = self.raw.create(f"/api/v1/namespaces/{namespace}/pods", pod)
        except ApiError as exc:
            self.expectations.creation_observed(key)  # it will never be observed
            if exc.status in (400, 403, 422):  # the request itself is wrong: say so, do not spin
                raise _NotSynchronized("FailedCreate", exc.message) from None
            raise
        name = created["metadata"]["name"]
        log.info("pod_created", vmi=key, pod=name)
        self.recorder.event(
            vmi, events.NORMAL, "SuccessfulCreate", f"Created virtual machine pod {name}"
        )

    def _read_claims(self, vmi: VirtualMachineInstance) -> dict[str, Json]:
        """Every claim the VMI's volumes name, read now (just before its pod is made, so never
        stale): the pod waits for a missing one, and each one's volumeMode shapes the pod."""
        claims: dict[str, Json] = {}
        for volume in vmi.spec.volumes:
            claim = volume.claim()  # a dataVolume's too
            if claim is None or claim.claim_name in claims:
                continue
            path = (
                f"/api/v1/namespaces/{vmi.metadata.namespace}/persistentvolumeclaims/"
                f"{claim.claim_name}"
            )
            try:
                claims[claim.claim_name] = self.raw.get(path)
            except ApiError as exc:
                if not exc.not_found:
                    raise
                raise _NotSynchronized(
                    "FailedPvcNotFound",
                    f"PVC {vmi.metadata.namespace}/{claim.claim_name} does not exist, waiting "
                    f"for it (volume {volume.name})",
                    again=RETRY_MISSING_CLAIM,
                ) from None
        return claims

    def _delete_pod(self, key: str, vmi: Json, name: str) -> None:
        namespace = vmi["metadata"]["namespace"]
        try:
            self.raw.delete(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except ApiError as exc:
            self.expectations.deletion_observed(key)  # it will never be seen
            if not exc.not_found:
                raise
            return
        log.info("pod_deleted", vmi=informer.key_of(vmi), pod=name)
        self.recorder.event(
            vmi, events.NORMAL, "SuccessfulDelete", f"Deleted virtual machine pod {name}"
        )

    def _write(self, vmi: Json, step: phase.Step, problem: _NotSynchronized | None) -> None:
        meta, status = vmi["metadata"], vmi.get("status") or {}
        patch_meta: Json = {}
        finalizers = list(meta.get("finalizers") or [])
        if step.remove_finalizer and keys.FINALIZER in finalizers:
            patch_meta["finalizers"] = [f for f in finalizers if f != keys.FINALIZER] or None
        elif not meta.get("deletionTimestamp") and keys.FINALIZER not in finalizers:
            patch_meta["finalizers"] = [*finalizers, keys.FINALIZER]
        changed: Json = {}
        if step.owned:
            changed = status_change(status, step, problem, now=timestamps.now())
            if step.scheduled_on is not None:
                patch_meta["labels"] = {keys.NODE_NAME: step.scheduled_on.node}
        if not patch_meta and not changed:
            return
        patch: Json = {"metadata": {**patch_meta, "resourceVersion": meta["resourceVersion"]}}
        if changed:
            patch["status"] = changed
        self.raw.merge_patch(kinds.VMI.path(meta["namespace"], meta["name"]), patch)
        self._patched_over[informer.key_of(vmi)] = meta["resourceVersion"]
        moved = changed.get("phase")
        if moved:
            log.info("vmi_phase", vmi=informer.key_of(vmi), phase=moved, reason=step.reason)
            if moved == phases.FAILED:
                self.recorder.event(vmi, events.WARNING, step.reason, step.message)
        for c in changed.get("conditions") or []:  # trouble the user should hear of, once
            if c["type"] in phase.OWNED_CONDITIONS and _condition_changed(status, c):
                self.recorder.event(vmi, events.WARNING, c.get("reason", ""), c.get("message", ""))


def status_change(
    status: Json, step: phase.Step, problem: _NotSynchronized | None, *, now: str
) -> Json:
    """The status fields to patch for `step` ({} when nothing changed). Pure."""
    wanted: Json = {}
    old = {c["type"]: c for c in status.get("conditions") or []}
    conditions = [
        c for c in status.get("conditions") or [] if c["type"] not in phase.OWNED_CONDITIONS
    ]
    mine = list(step.conditions)
    if problem is not None:
        mine.append(phase.Condition("Synchronized", False, problem.reason, problem.message))
    for c in mine:
        conditions.append(
            make_condition(old.get(c.type), c.type, c.ok, c.reason, c.message, now=now)
        )
    if conditions or old:
        wanted["conditions"] = conditions
    if step.scheduled_on is not None:
        wanted["nodeName"] = step.scheduled_on.node
        wanted["activePods"] = {step.scheduled_on.uid: step.scheduled_on.node}
    moved = phases.move(status, step.phase, reason=step.reason, now=now)
    return {**moved, **{k: v for k, v in wanted.items() if status.get(k) != v}}


def _condition_changed(status: Json, after: Json) -> bool:
    """Whether `after` says something new compared with the same condition in `status`."""
    before = next((c for c in status.get("conditions") or [] if c["type"] == after["type"]), None)
    fields = ("status", "reason", "message")
    return before is None or any(before.get(f) != after.get(f) for f in fields)


def _load(vmi: Json) -> VirtualMachineInstance:
    """The VMI as kvd.api reads it (on a cluster without kvd's admission, this is where a bad
    spec is caught)."""
    try:
        loaded = kinds.load({k: v for k, v in vmi.items() if k != "status"})
    except ValidationError as exc:
        raise _NotSynchronized("FailedCreate", f"invalid VMI: {exc}") from None
    if not isinstance(loaded, VirtualMachineInstance):
        raise _NotSynchronized("FailedCreate", f"not a VirtualMachineInstance: {vmi.get('kind')}")
    return loaded
