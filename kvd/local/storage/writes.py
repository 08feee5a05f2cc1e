"""The writes of kvd's local storage controller: phases, binding, finalizers and Events.

Every status write is skipped when the object already says it, so a reconcile that finds
nothing to do writes nothing; binding is kube's order (the volume's claimRef first, then its
phase, then the claim's volumeName and annotations, then its status), so a crash between two
steps leaves a state the next pass finishes.
"""

from __future__ import annotations

from typing import Any

from kvd import logs, timestamps
from kvd.kube import client
from kvd.kube.events import Recorder
from kvd.local.storage import keys

log = logs.get_logger(__name__)

Json = dict[str, Any]


def claim_path(claim: Json) -> str:
    meta = claim["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}"


class Writes:
    def __init__(self, raw: client.Raw) -> None:
        self.raw = raw
        self.events = Recorder(raw=raw, component="persistentvolume-controller")
        self.provisioner_events = Recorder(raw=raw, component=keys.PROVISIONER)
        self._said: dict[tuple[str, str], str] = {}

    def bind(self, claim: Json, volume: Json) -> None:
        meta, name = claim["metadata"], volume["metadata"]["name"]
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        by_controller = not ref  # a volume the user pre-bound is not the controller's choice
        if ref.get("uid") != meta["uid"]:
            patch: Json = {"spec": {"claimRef": claim_ref(claim)}}
            if by_controller:
                patch["metadata"] = {"annotations": {keys.BOUND_BY_CONTROLLER: "yes"}}
            volume = self.raw.merge_patch(f"/api/v1/persistentvolumes/{name}", patch)
        if (volume.get("status") or {}).get("phase") != "Bound":
            self.raw.merge_patch(
                f"/api/v1/persistentvolumes/{name}/status", {"status": {"phase": "Bound"}}
            )
        path = f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}"
        annotations = meta.get("annotations") or {}
        if (claim.get("spec") or {}).get("volumeName") != name or not annotations.get(
            keys.BIND_COMPLETED
        ):
            wanted = {keys.BIND_COMPLETED: "yes"}
            if not (claim.get("spec") or {}).get("volumeName"):
                wanted[keys.BOUND_BY_CONTROLLER] = "yes"
            self.raw.merge_patch(
                path,
                {
                    "metadata": {"annotations": wanted, "resourceVersion": meta["resourceVersion"]},
                    "spec": {"volumeName": name},
                },
            )
        status = claim.get("status") or {}
        spec = volume.get("spec") or {}
        if status.get("phase") != "Bound" or not status.get("capacity"):
            self.raw.merge_patch(
                f"{path}/status",
                {
                    "status": {
                        "phase": "Bound",
                        "accessModes": spec.get("accessModes") or [],
                        "capacity": spec.get("capacity") or {},
                    }
                },
            )
            log.info("claim_bound", claim=f"{meta['namespace']}/{meta['name']}", pv=name)

    def drop_finalizer(self, volume: Json) -> None:
        name = volume["metadata"]["name"]
        try:
            current = self.raw.get(f"/api/v1/persistentvolumes/{name}")
        except client.ApiError as exc:
            if exc.not_found:
                return
            raise
        left = [
            f
            for f in current["metadata"].get("finalizers") or []
            if f != keys.PROVISIONER_FINALIZER
        ]
        self.raw.merge_patch(
            f"/api/v1/persistentvolumes/{name}",
            {
                "metadata": {
                    "finalizers": left or None,
                    "resourceVersion": current["metadata"]["resourceVersion"],
                }
            },
        )

    def fresh_volume(self, name: str) -> Json | None:
        try:
            return self.raw.get(f"/api/v1/persistentvolumes/{name}")
        except client.ApiError as exc:
            if exc.not_found:
                return None
            raise

    # --- writes -------------------------------------------------------------------------------

    def annotate_provisioner(self, claim: Json, provisioner: str) -> None:
        annotations = claim["metadata"].get("annotations") or {}
        if annotations.get(keys.STORAGE_PROVISIONER) == provisioner:
            return
        meta = claim["metadata"]
        self.raw.merge_patch(
            f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}",
            {
                "metadata": {
                    "annotations": {
                        keys.STORAGE_PROVISIONER: provisioner,
                        keys.BETA_STORAGE_PROVISIONER: provisioner,
                    }
                }
            },
        )

    def set_claim_phase(self, claim: Json, phase: str) -> None:
        if (claim.get("status") or {}).get("phase") == phase:
            return
        meta = claim["metadata"]
        self.raw.merge_patch(
            f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status",
            {"status": {"phase": phase}},
        )

    def set_volume_phase(self, volume: Json, phase: str, message: str | None = None) -> None:
        status = volume.get("status") or {}
        if status.get("phase") == phase and status.get("message") == message:
            return
        self.raw.merge_patch(
            f"/api/v1/persistentvolumes/{volume['metadata']['name']}/status",
            {"status": {"phase": phase, "message": message}},
        )

    def event(
        self,
        obj: Json,
        kind: str,
        reason: str,
        message: str,
        *,
        provisioner: bool = False,
        resizer: bool = False,
    ) -> None:
        """An Event, once per object and reason while its message stays the same (kube's
        recorder aggregates repeats into a count; a reconcile repeats far more often here)."""
        meta = obj["metadata"]
        said = (meta["uid"], reason)
        if self._said.get(said) == message:
            return
        self._said[said] = message
        namespaced = bool(meta.get("namespace"))
        ref = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim" if namespaced else "PersistentVolume",
            "metadata": meta,
        }
        recorder = self.provisioner_events if provisioner or resizer else self.events
        recorder.event(ref, kind, reason, message)


def claim_ref(claim: Json) -> Json:
    meta = claim["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
    }


def condition(kind: str, message: str | None = None) -> Json:
    condition: Json = {"type": kind, "status": "True", "lastTransitionTime": timestamps.now()}
    if message:
        condition["message"] = message
    return condition
