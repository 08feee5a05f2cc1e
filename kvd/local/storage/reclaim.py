"""A PersistentVolume's phase and reclaim, as kube's PV controller's `syncVolume`.

No claimRef (or one without uid: pre-bound, waiting) → Available; bound to a live claim →
Bound; its claim gone → Released, then by `persistentVolumeReclaimPolicy`: `Retain` leaves
volume and data, `Delete` removes the data and the PV — for volumes kvd.io/local provisioned
only; anything else ends `Failed` with kube's "no deletable volume plugin" (kube has no deleter
for hostPath or local volumes either). A PV deleted by a user while unbound has its data removed
before its finalizer goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvd import logs
from kvd.kube import client
from kvd.kube.events import WARNING
from kvd.local.storage import keys, matching
from kvd.local.storage.backing import Backing, BackingError
from kvd.local.storage.writes import Writes

log = logs.get_logger(__name__)

Json = dict[str, Any]
NO_DELETER = (
    'error getting deleter volume plugin for volume "{name}": no deletable volume plugin matched'
)


class Reclaimer:
    def __init__(
        self, writes: Writes, backing: Backing, *, claims: Callable[[str], Json | None]
    ) -> None:
        self.w = writes
        self.backing = backing
        self.claims = claims

    def sync(self, volume: Json) -> None:
        meta, spec = volume["metadata"], volume.get("spec") or {}
        name = meta["name"]
        ref = spec.get("claimRef")
        claim = self._claim_of(volume)
        if meta.get("deletionTimestamp"):
            if claim is None and ref and (volume.get("status") or {}).get("phase") == "Bound":
                # pv-protection lets a volume go only once it is no longer Bound
                self.w.set_volume_phase(volume, "Released")
            if keys.PROVISIONER_FINALIZER in (meta.get("finalizers") or []) and claim is None:
                self._delete_data(volume)
                self.w.drop_finalizer(volume)
            return
        if not ref or not ref.get("uid"):
            # free, or pre-bound by a user (claimRef without uid): waits for its claim
            self.w.set_volume_phase(volume, "Available")
            return
        if claim is not None:
            if (claim.get("spec") or {}).get("volumeName") == name:
                self.w.set_volume_phase(volume, "Bound")
            return
        phase = (volume.get("status") or {}).get("phase")
        if phase == "Failed":
            return
        if phase != "Released":
            self.w.set_volume_phase(volume, "Released")
        self._reclaim(volume)

    def _reclaim(self, volume: Json) -> None:
        meta, spec = volume["metadata"], volume.get("spec") or {}
        name = meta["name"]
        policy = spec.get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            return
        if policy != "Delete":
            message = f"{policy} is not supported by kvd's local storage"
            self.w.set_volume_phase(volume, "Failed", message)
            self.w.event(volume, WARNING, "VolumeFailedRecycle", message)
            return
        ours = (meta.get("annotations") or {}).get(keys.PROVISIONED_BY) == keys.PROVISIONER
        if not ours:
            message = NO_DELETER.format(name=name)
            self.w.set_volume_phase(volume, "Failed", message)
            self.w.event(volume, WARNING, "VolumeFailedDelete", message)
            return
        try:
            self._delete_data(volume)
        except BackingError as exc:
            self.w.set_volume_phase(volume, "Failed", str(exc))
            self.w.event(volume, WARNING, "VolumeFailedDelete", str(exc))
            raise
        try:
            self.w.raw.delete(f"/api/v1/persistentvolumes/{name}")
        except client.ApiError as exc:
            if not exc.not_found:
                raise
        self.w.drop_finalizer(volume)
        log.info("volume_deleted", pv=name)

    def _claim_of(self, volume: Json) -> Json | None:
        """The live claim the volume is bound to (by uid), read from the API server when the
        cache does not have it: a claim just made must not look deleted (kube does the same)."""
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if not ref.get("uid"):
            return None
        key = f"{ref.get('namespace')}/{ref.get('name')}"
        claim = self.claims(key)
        if claim is None or claim["metadata"]["uid"] != ref["uid"]:
            try:
                claim = self.w.raw.get(
                    f"/api/v1/namespaces/{ref.get('namespace')}/persistentvolumeclaims/"
                    f"{ref.get('name')}"
                )
            except client.ApiError as exc:
                if not exc.not_found:
                    raise
                return None
        return claim if claim["metadata"]["uid"] == ref["uid"] else None

    def _delete_data(self, volume: Json) -> None:
        spec = volume.get("spec") or {}
        source = spec.get("hostPath") or spec.get("local") or {}
        if not source.get("path") or not self.backing.owns(source["path"]):
            return  # never delete outside the provisioner's root
        block = matching.volume_mode(volume) == "Block"
        self.backing.delete(volume["metadata"]["name"], block=block)
