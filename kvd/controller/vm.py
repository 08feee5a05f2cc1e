"""The VirtualMachine controller: each VM gets the VMI its run strategy asks for, and a status
that says how it is doing (KubeVirt's pkg/virt-controller/watch/vm).

Level-triggered (CONVENTIONS.md, shape 2): VM, VMI and claim events only enqueue the VM's key;
`reconcile(key)` reads the VM and its VMI (same namespace and name) from the caches, asks the
pure modules what to do (`vmrun`: start or stop; `vmtemplate`: the VMI to create and whether the
running one still matches; `vmstatus`: the status), does it, and writes the status when it
changed, guarded by the VM's resourceVersion.

Never two VMIs, never an orphan: the VMI has the VM's name, so the API server refuses a second;
before creating or deleting it the controller records what it expects
(`kvd.kube.expectations`) and acts again only once the VMI informer has seen it. The VM carries
the finalizer `kubevirt.io/virtualMachineControllerFinalize` from its first reconcile: deleting a
VM deletes its VMI first (the guest shuts down within its grace period) and the VM goes only
once the VMI is gone. The VMI carries the same finalizer until the controller has recorded its
end on the VM (the start back-off needs to see a VMI that failed); a VMI whose VM is gone loses
it as soon as it ends.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kvd import logs
from kvd.api import keys, kinds, phases
from kvd.controller import vmrun, vmstatus, vmtemplate, vmvolumes
from kvd.kube import events, informer
from kvd.kube.client import ApiError, Raw
from kvd.kube.expectations import Expectations

log = logs.get_logger(__name__)

Json = dict[str, Any]

BY_CLAIM = "claims"
ORPHAN = "orphan"  # the finalizer `kubectl delete --cascade=orphan` sets
CONFLICT_RETRY = 0.5


class SyncFailed(Exception):
    """A step of the reconcile failed: a Failure condition on the VM, and a retry with back-off."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def claims_of(vm: Json) -> list[str]:
    """The index of VMs by the claims (`namespace/name`) their template's volumes name; a
    dataVolume names its DataVolume's claim, which has the DataVolume's name."""
    namespace = vm["metadata"].get("namespace")
    volumes = (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes")
    return [
        f"{namespace}/{v['persistentVolumeClaim']['claimName']}"
        for v in volumes or []
        if isinstance(v, dict) and (v.get("persistentVolumeClaim") or {}).get("claimName")
    ] + [f"{namespace}/{name}" for name in vmvolumes.data_volume_names(vm)]


def ended(vmi: Json) -> bool:
    return phases.is_final(str((vmi.get("status") or {}).get("phase") or ""))


def bound(claim: Json) -> bool:
    """Whether a claim is bound: phase Bound, as kube's volume binder sets it; or, with no phase
    at all, bound to a volume by name (the local cluster has no binder, the kubelet mounts the
    named volume)."""
    phase = (claim.get("status") or {}).get("phase")
    if phase:
        return bool(phase == "Bound")
    return bool((claim.get("spec") or {}).get("volumeName"))


class VMController:
    def __init__(
        self,
        *,
        raw: Raw,
        vms: informer.Informer,
        vmis: informer.Informer,
        claims: informer.Informer,
        recorder: events.Recorder,
        expectations: Expectations | None = None,
        jitter: Callable[[], float] = random.random,
        dvs: informer.Informer | None = None,
    ) -> None:
        self.raw = raw
        self.vms = vms
        self.vmis = vmis
        self.claims = claims
        self.recorder = recorder
        self.expectations = expectations or Expectations()
        self.jitter = jitter
        self.volumes = vmvolumes.DataVolumes(raw=raw, dvs=dvs, recorder=recorder)
        # key → resourceVersions our writes replaced: a cache still showing one is stale
        self._replaced: dict[str, set[str]] = {}
        vms.add_index(BY_CLAIM, claims_of)

    # --- events (informer threads: only enqueue) ----------------------------------------------

    def on_vm(self, _kind: str, vm: Json, enqueue: Callable[[str], None]) -> None:
        enqueue(informer.key_of(vm))

    def on_vmi(self, kind: str, vmi: Json, enqueue: Callable[[str], None]) -> None:
        key = informer.key_of(vmi)
        ref = vmtemplate.controller_of(vmi)
        if ref is not None and ref.get("kind") == kinds.VM.kind:
            if kind == "DELETED" or vmi["metadata"].get("deletionTimestamp"):
                self.expectations.deletion_observed(key)  # marked for deletion is enough
            elif kind == "ADDED":
                self.expectations.creation_observed(key)
            enqueue(key)
        elif ref is None and self.vms.get(key) is not None:
            enqueue(key)  # an orphan with a VM's name: the VM adopts it
        elif keys.VM_FINALIZER in (vmi["metadata"].get("finalizers") or []):
            enqueue(key)  # ours once; released when it ends

    def on_claim(self, _kind: str, claim: Json, enqueue: Callable[[str], None]) -> None:
        for vm in self.vms.by_index(BY_CLAIM, informer.key_of(claim)):
            enqueue(informer.key_of(vm))

    def on_dv(self, kind: str, dv: Json, enqueue: Callable[[str], None]) -> None:
        """A DataVolume: the VMs that name it (its claim has its name) are enqueued."""
        self.on_claim(kind, dv, enqueue)

    # --- reconcile ----------------------------------------------------------------------------

    def reconcile(self, key: str) -> float | None:
        """Make `key`'s VMI match its run strategy and write its status; returns when to look
        again. Raises SyncFailed (after writing the status that says so) to retry with back-off."""
        vm = self.vms.get(key)
        vmi = self.vmis.get(key)
        if vm is None:
            self.expectations.delete(key)
            self._replaced.pop(key, None)
            if vmi is not None:
                self._release(vmi)
            return None
        if vm["metadata"]["resourceVersion"] in self._replaced.get(key, set()):
            return 1.0  # the cache is older than our last write, whose event brings us back
        self._replaced.pop(key, None)
        try:
            return self._reconcile(key, vm, self._claim(vm, vmi))
        except ApiError as exc:
            if exc.not_found:
                return None  # the VM went (its last finalizer, ours, is off): nothing to write
            if not exc.conflict:
                raise
            log.debug("vm_conflict", vm=key)  # a newer write (often ours): its event follows
            return CONFLICT_RETRY

    def _reconcile(self, key: str, vm: Json, vmi: Json | None) -> float | None:
        now = datetime.now(UTC)
        meta = vm["metadata"]
        error: SyncFailed | None = None
        again: float | None = None
        started = False
        try:
            strategy: str | None = vmrun.run_strategy(vm.get("spec") or {})
        except vmrun.InvalidRunStrategy as exc:
            strategy = None
            error = SyncFailed("FailedCreate", f"Error fetching RunStrategy: {exc}")
        if self.expectations.satisfied(key):
            try:
                if meta.get("deletionTimestamp"):
                    vm = self._deleting(key, vm, vmi)
                elif strategy is not None:
                    vm = self._ensure_finalizer(vm)
                    vmi = self._bump_generation(vm, vmi)
                    action = vmrun.decide(
                        strategy, vm.get("status") or {}, vmrun.view(vmi), now=now
                    )
                    self.volumes.ensure(vm)
                    if action.start and not self.volumes.view(vm).ready:
                        action = dataclasses.replace(action, start=False)  # a DV's event: again
                    vm, started = self._act(key, vm, vmi, action)
                    again = action.again
            except SyncFailed as exc:
                error = exc
        pending = self.expectations.pending(key) or (0, 0)
        observed = vmstatus.Observed(
            start_expected=pending[0] > 0,
            stop_expected=pending[1] > 0,
            claims_unbound=self._claims_unbound(vm),
            data_volumes=self.volumes.view(vm),
            error=(error.reason, error.message) if error is not None else None,
            restart_required=(
                False
                if started
                else (not vmtemplate.spec_matches(vm, vmi) if vmi is not None else None)
            ),
        )
        status = vmstatus.compute(
            vm, vmi, observed, strategy=strategy, now=now, jitter=self.jitter()
        )
        self._write_status(key, vm, status)
        if vmi is not None and ended(vmi):
            self._remove_vmi_finalizer(vmi)  # its end is on the VM now: it may go
        if error is not None:
            raise error
        return again

    def _act(self, key: str, vm: Json, vmi: Json | None, action: vmrun.Action) -> tuple[Json, bool]:
        """Carry out `action`; returns the VM as last written and whether a VMI was created."""
        if action.request_start:  # recorded before the failed VMI goes, so the restart is not lost
            status = dict(vm.get("status") or {})
            status["stateChangeRequests"] = [
                *(status.get("stateChangeRequests") or []),
                {"action": vmrun.START},
            ]
            vm = self._write_status(key, vm, status)
        if action.set_running:
            spec = vm.get("spec") or {}
            change = {"running": True} if "running" in spec else {"runStrategy": vmrun.ALWAYS}
            log.info("vm_set_running", vm=key, change=change)
            return self._patch(key, vm, {"spec": change}), False
        if action.stop and vmi is not None and not vmi["metadata"].get("deletionTimestamp"):
            self._delete_vmi(key, vm, vmi, why=action.why)
        if action.start:
            self._create_vmi(key, vm, why=action.why)
            return vm, True
        return vm, False

    def _deleting(self, key: str, vm: Json, vmi: Json | None) -> Json:
        """A VM being deleted: its VMI goes first, then the VM's finalizer."""
        finalizers = vm["metadata"].get("finalizers") or []
        if vmi is None or ORPHAN in finalizers:
            if keys.VM_FINALIZER in finalizers:
                left = [f for f in finalizers if f != keys.VM_FINALIZER]
                vm = self._patch(key, vm, {"metadata": {"finalizers": left or None}})
                log.info("vm_finalizer_removed", vm=key)
            return vm
        if not vmi["metadata"].get("deletionTimestamp"):
            self._delete_vmi(key, vm, vmi, why="VM deleted")
        return vm

    def _ensure_finalizer(self, vm: Json) -> Json:
        finalizers = vm["metadata"].get("finalizers") or []
        if keys.VM_FINALIZER in finalizers:
            return vm
        key = informer.key_of(vm)
        return self._patch(key, vm, {"metadata": {"finalizers": [*finalizers, keys.VM_FINALIZER]}})

    def _bump_generation(self, vm: Json, vmi: Json | None) -> Json | None:
        """A VM edit that needs no restart (its run strategy, its labels) moves the generation
        the VMI records, so observedGeneration follows it (KubeVirt's conditional bump)."""
        generation = int(vm["metadata"].get("generation") or 1)
        if vmi is None or vmi["metadata"].get("deletionTimestamp"):
            return vmi
        if vmtemplate.generation_of(vmi) == generation or not vmtemplate.template_matches(vm, vmi):
            return vmi
        patch = {
            "metadata": {
                "annotations": {keys.VM_GENERATION: str(generation)},
                "resourceVersion": vmi["metadata"]["resourceVersion"],
            }
        }
        meta = vmi["metadata"]
        patched: Json = self.raw.merge_patch(kinds.VMI.path(meta["namespace"], meta["name"]), patch)
        return patched

    # --- the VMI --------------------------------------------------------------------------------

    def _claim(self, vm: Json, vmi: Json | None) -> Json | None:
        """The VM's VMI: the one it controls, or an orphan of its name, adopted (KubeVirt's
        ClaimVirtualMachineInstanceByName). A VMI another object controls is not its."""
        if vmi is None:
            return None
        ref = vmtemplate.controller_of(vmi)
        if ref is not None:
            if ref.get("uid") == vm["metadata"]["uid"]:
                return vmi
            if ref.get("kind") == kinds.VM.kind:
                self._release(vmi)  # a VM of this name that is gone made it
            return None
        if vm["metadata"].get("deletionTimestamp") or vmi["metadata"].get("deletionTimestamp"):
            return None
        meta = vmi["metadata"]
        patch = {
            "metadata": {
                "ownerReferences": [
                    *(meta.get("ownerReferences") or []),
                    vmtemplate.owner_reference(vm),
                ],
                "resourceVersion": meta["resourceVersion"],
            }
        }
        # a conflict (the VMI changed meanwhile) ends the reconcile: its event brings it back,
        # and acting as if the VM had no VMI would try to create a second one
        adopted: Json = self.raw.merge_patch(kinds.VMI.path(meta["namespace"], meta["name"]), patch)
        log.info("vmi_adopted", vm=informer.key_of(vm), uid=meta["uid"])
        return adopted

    def _create_vmi(self, key: str, vm: Json, *, why: str) -> None:
        body = vmtemplate.vmi_for(vm)
        self.expectations.expect_creations(key, 1)
        try:
            created = self.raw.create(kinds.VMI.path(vm["metadata"]["namespace"]), body)
        except ApiError as exc:
            self.expectations.creation_observed(key)  # it will never be observed
            self.recorder.event(
                vm,
                events.WARNING,
                "FailedCreate",
                f"Error creating virtual machine instance: {exc.message}",
            )
            raise SyncFailed("FailedCreate", f"Failure while starting VMI: {exc.message}") from None
        name = created["metadata"]["name"]
        log.info("vmi_created", vm=key, uid=created["metadata"]["uid"], why=why)
        self.recorder.event(
            vm,
            events.NORMAL,
            "SuccessfulCreate",
            f"Started the virtual machine by creating the new virtual machine instance {name}",
        )

    def _delete_vmi(self, key: str, vm: Json, vmi: Json, *, why: str) -> None:
        meta = vmi["metadata"]
        self.expectations.expect_deletions(key, 1)
        try:
            self.raw.delete(
                kinds.VMI.path(meta["namespace"], meta["name"]),
                body={"preconditions": {"uid": meta["uid"]}},
            )
        except ApiError as exc:
            self.expectations.deletion_observed(key)  # it will never be observed
            if exc.not_found:
                return
            self.recorder.event(
                vm,
                events.WARNING,
                "FailedDelete",
                f"Error deleting virtual machine instance {meta['name']}: {exc.message}",
            )
            raise SyncFailed(
                "FailedDelete", f"Failure attempting to delete VMI: {exc.message}"
            ) from None
        log.info("vmi_deleted", vm=key, uid=meta["uid"], why=why)
        self.recorder.event(
            vm,
            events.NORMAL,
            "SuccessfulDelete",
            f"Stopped the virtual machine by deleting the virtual machine instance {meta['uid']}",
        )

    def _remove_vmi_finalizer(self, vmi: Json) -> None:
        meta = vmi["metadata"]
        finalizers = meta.get("finalizers") or []
        if keys.VM_FINALIZER not in finalizers:
            return
        left = [f for f in finalizers if f != keys.VM_FINALIZER]
        patch = {
            "metadata": {"finalizers": left or None, "resourceVersion": meta["resourceVersion"]}
        }
        try:
            self.raw.merge_patch(kinds.VMI.path(meta["namespace"], meta["name"]), patch)
        except ApiError as exc:
            if exc.not_found or exc.conflict:
                return  # gone, or changed: its next event brings us back
            raise
        log.info("vmi_finalizer_removed", vmi=informer.key_of(vmi), uid=meta["uid"])

    def _release(self, vmi: Json) -> None:
        """A VMI whose VM is gone keeps the VM controller's finalizer only until it ends."""
        if ended(vmi):
            self._remove_vmi_finalizer(vmi)

    # --- the VM -------------------------------------------------------------------------------

    def _claims_unbound(self, vm: Json) -> bool:
        for key in claims_of(vm):
            claim = self.claims.get(key)
            if claim is not None and not bound(claim):
                return True
        return False

    def _patch(self, key: str, vm: Json, patch: Json, *, status: bool = False) -> Json:
        meta = vm["metadata"]
        body = {
            **patch,
            "metadata": {**patch.get("metadata", {}), "resourceVersion": meta["resourceVersion"]},
        }
        path = kinds.VM.path(meta["namespace"], meta["name"]) + ("/status" if status else "")
        patched: Json = self.raw.merge_patch(path, body)
        self._replaced.setdefault(key, set()).add(meta["resourceVersion"])
        return patched

    def _write_status(self, key: str, vm: Json, status: Json) -> Json:
        old = vm.get("status") or {}
        if status == old:
            return vm
        changed = {k: v for k, v in status.items() if old.get(k) != v}
        changed.update({k: None for k in old if k not in status})
        patched = self._patch(key, vm, {"status": changed}, status=True)
        shown = status.get("printableStatus")
        if shown != old.get("printableStatus"):
            log.info("vm_status", vm=key, printable_status=shown)
        return patched
