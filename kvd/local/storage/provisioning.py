"""Provisioning and expansion of kvd.io/local volumes (external-provisioner and
external-resizer, for a provisioner whose "storage backend" is this host's data dir).

`provision` makes the volume's data (`backing`) and then its PV, pre-bound to the claim by uid,
with kube's annotations (`pv.kubernetes.io/provisioned-by`), a node affinity to this node and a
finalizer so the PV object outlives its data only until the data is gone; the PV is named
`pvc-<claim uid>`, so a retried pass finds what an earlier one made. `expand` grows a bound
volume to its claim's new request (the claim says `Resizing` meanwhile).
"""

from __future__ import annotations

from typing import Any

from kvd import logs
from kvd.kube import client
from kvd.kube.events import NORMAL, WARNING
from kvd.local.storage import keys, matching
from kvd.local.storage.backing import Backing, BackingError
from kvd.local.storage.writes import Writes, claim_path, claim_ref, condition

log = logs.get_logger(__name__)

Json = dict[str, Any]


class Provisioner:
    def __init__(self, writes: Writes, backing: Backing, *, node_name: str) -> None:
        self.w = writes
        self.backing = backing
        self.node_name = node_name

    def provision(self, claim: Json, sc: Json) -> Json:
        meta = claim["metadata"]
        pv_name = f"pvc-{meta['uid']}"
        existing = self.w.fresh_volume(pv_name)
        if existing is not None:
            return existing  # made on an earlier pass; binding it is what is left
        what = f"{meta['namespace']}/{meta['name']}"
        self.w.event(
            claim,
            NORMAL,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{what}"',
            provisioner=True,
        )
        spec = claim.get("spec") or {}
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        size = matching.storage({"storage": request}) or 0
        block = matching.volume_mode(claim) == "Block"
        try:
            path = self.backing.create(pv_name, size=size, block=block)
        except BackingError as exc:
            self.w.event(claim, WARNING, "ProvisioningFailed", str(exc), provisioner=True)
            raise
        source: Json = (
            {"local": {"path": str(path)}}
            if block
            else {"hostPath": {"path": str(path), "type": "Directory"}}
        )
        volume: Json = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {keys.PROVISIONED_BY: keys.PROVISIONER},
                "finalizers": [keys.PROVISIONER_FINALIZER],
            },
            "spec": {
                "capacity": {"storage": str(request)},
                "accessModes": list(spec.get("accessModes") or []),
                "volumeMode": "Block" if block else "Filesystem",
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                "storageClassName": sc["metadata"]["name"],
                "claimRef": claim_ref(claim),
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": keys.HOSTNAME_LABEL,
                                        "operator": "In",
                                        "values": [self.node_name],
                                    }
                                ]
                            }
                        ]
                    }
                },
                **source,
            },
        }
        try:
            created = self.w.raw.create("/api/v1/persistentvolumes", volume)
        except client.ApiError as exc:
            if exc.status == 409:
                return self.w.raw.get(f"/api/v1/persistentvolumes/{pv_name}")
            self.backing.delete(pv_name, block=block)  # nothing outlives the failure
            self.w.event(claim, WARNING, "ProvisioningFailed", exc.message, provisioner=True)
            raise
        log.info("volume_provisioned", pv=pv_name, claim=what, size=size, block=block)
        self.w.event(
            claim,
            NORMAL,
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {pv_name}",
            provisioner=True,
        )
        return created

    def expand(self, claim: Json, volume: Json, sc: Json | None) -> None:
        spec = claim.get("spec") or {}
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        want = matching.storage({"storage": requested})
        have = matching.storage((volume.get("spec") or {}).get("capacity"))
        status = claim.get("status") or {}
        path = claim_path(claim)
        if want is None or have is None or want <= have:
            shown = matching.storage(status.get("capacity"))
            if have is not None and shown is not None and shown < have:
                # the volume grew (an earlier pass) but the claim's status did not say so yet
                self.finish_resize(path, volume)
            return
        sc = sc or {}
        provisioned = (volume["metadata"].get("annotations") or {}).get(keys.PROVISIONED_BY)
        if not sc.get("allowVolumeExpansion") or provisioned != keys.PROVISIONER:
            return  # admission refuses this; a volume not ours has no resizer here
        name = volume["metadata"]["name"]
        self.w.raw.merge_patch(
            f"{path}/status",
            {
                "status": {
                    "conditions": [condition("Resizing")],
                    "allocatedResources": {"storage": requested},
                    "allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"},
                }
            },
        )
        self.w.event(
            claim, NORMAL, "Resizing", f"External resizer is resizing volume {name}", resizer=True
        )
        block = matching.volume_mode(volume) == "Block"
        try:
            self.backing.grow(name, size=want, block=block)
        except BackingError as exc:
            self.w.raw.merge_patch(
                f"{path}/status",
                {
                    "status": {
                        "conditions": [condition("ControllerResizeError", str(exc))],
                        "allocatedResourceStatuses": {"storage": "ControllerResizeInfeasible"},
                    }
                },
            )
            self.w.event(claim, WARNING, "VolumeResizeFailed", str(exc), resizer=True)
            raise
        grown = self.w.raw.merge_patch(
            f"/api/v1/persistentvolumes/{name}", {"spec": {"capacity": {"storage": requested}}}
        )
        self.finish_resize(path, grown)
        self.w.event(
            claim, NORMAL, "VolumeResizeSuccessful", "Resize volume succeeded", resizer=True
        )
        log.info("volume_expanded", pv=name, size=want, block=block)

    def finish_resize(self, path: str, volume: Json) -> None:
        self.w.raw.merge_patch(
            f"{path}/status",
            {
                "status": {
                    "capacity": (volume.get("spec") or {}).get("capacity") or {},
                    "conditions": None,
                    "allocatedResourceStatuses": None,
                }
            },
        )

    # --- volumes ------------------------------------------------------------------------------
