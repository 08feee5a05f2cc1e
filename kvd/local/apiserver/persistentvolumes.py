"""What kube-apiserver does to PersistentVolumeClaims, PersistentVolumes and StorageClasses
before storing them: defaults, the DefaultStorageClass and PersistentVolumeClaimResize admission
plugins, and the update rules of their strategies.

- Defaults (`SetDefaults_*`): a claim's and a volume's `volumeMode: Filesystem`, a volume's
  `persistentVolumeReclaimPolicy: Retain`, a class's `reclaimPolicy: Delete` and
  `volumeBindingMode: Immediate`; a new claim or volume starts `phase: Pending` (its strategy's
  PrepareForCreate), whatever status the client sent.
- DefaultStorageClass: a claim that does not name a class (`storageClassName` absent; "" asks for
  no class) gets the class annotated `storageclass.kubernetes.io/is-default-class: "true"`, the
  newest when several are.
- A claim's spec is immutable, but for `resources.requests` of a bound claim and a first
  `volumeName` (the PV controller binding it); a request may not drop below `status.capacity`,
  and may only grow when the claim's class says `allowVolumeExpansion` (403, kube's message).
- A class's provisioner, parameters, reclaim policy and binding mode never change.
- StorageObjectInUseProtection: a new claim gets the `kubernetes.io/pvc-protection` finalizer,
  a new volume `kubernetes.io/pv-protection`; the local node's protection controllers
  (`kvd/local/storage/protection.py`) remove them once deleting is safe.
"""

from __future__ import annotations

import copy
from typing import Any

from kvd.api.quantity import Quantity, QuantityError
from kvd.local.apiserver import errors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.history import ResourceKey
from kvd.local.apiserver.kinds import fields
from kvd.local.apiserver.registry import ResourceDef
from kvd.local.apiserver.store import Store

Json = dict[str, Any]
CLASSES = ResourceKey("storage.k8s.io", "storageclasses")
# kube's StorageObjectInUseProtection admission plugin's finalizers
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
IS_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
RESIZE_FORBIDDEN = (
    "only dynamically provisioned pvc can be resized and the storageclass that provisions the "
    "pvc must support resize"
)
CLAIM_IMMUTABLE = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName "
    "for bound claims"
)


class StorageAdmission:
    def __init__(self, store: Store) -> None:
        self.store = store

    def on_create(self, resource: ResourceDef, obj: Json) -> list[str]:
        which = (resource.group, resource.plural)
        if which == ("storage.k8s.io", "storageclasses"):
            obj.setdefault("reclaimPolicy", "Delete")
            obj.setdefault("volumeBindingMode", "Immediate")
        elif which == ("", "persistentvolumeclaims"):
            _protect(obj, PVC_PROTECTION)
            spec = obj.setdefault("spec", {})
            if isinstance(spec, dict):
                spec.setdefault("volumeMode", "Filesystem")
                if "storageClassName" not in spec or spec["storageClassName"] is None:
                    default = self._default_class()
                    if default is not None:
                        spec["storageClassName"] = default
            obj["status"] = {"phase": "Pending"}
        elif which == ("", "persistentvolumes"):
            _protect(obj, PV_PROTECTION)
            spec = obj.setdefault("spec", {})
            if isinstance(spec, dict):
                spec.setdefault("volumeMode", "Filesystem")
                spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            obj["status"] = {"phase": "Pending"}
        return []

    def on_update(self, resource: ResourceDef, old: Json, new: Json) -> list[str]:
        which = (resource.group, resource.plural)
        name = str((new.get("metadata") or {}).get("name", ""))
        errs = fields.Errors()
        if which == ("storage.k8s.io", "storageclasses"):
            for key, why in (
                ("parameters", "updates to parameters are forbidden."),
                ("provisioner", "updates to provisioner are forbidden."),
                ("reclaimPolicy", "updates to reclaimPolicy are forbidden."),
                ("volumeBindingMode", "field is immutable"),
            ):
                if old.get(key) != new.get(key):
                    errs.forbidden(key, why)
            _raise(resource, name, errs.causes)
        elif which == ("", "persistentvolumeclaims"):
            self._claim_update(resource, name, old, new)
        return []

    def _claim_update(self, resource: ResourceDef, name: str, old: Json, new: Json) -> None:
        if isinstance(new.get("spec"), dict):
            new["spec"].setdefault("volumeMode", "Filesystem")  # kube defaults every write
        before, after = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(new.get("spec") or {})
        if not before.get("volumeName"):
            before.pop("volumeName", None)  # binding sets it once
            after.pop("volumeName", None)
        bound = (old.get("status") or {}).get("phase") == "Bound"
        old_request = _storage(before)
        new_request = _storage(after)
        if bound:
            for spec in (before, after):
                (spec.get("resources") or {}).pop("requests", None)
        if before != after:
            _raise(
                resource, name, [Cause(fields.FORBIDDEN, f"Forbidden: {CLAIM_IMMUTABLE}", "spec")]
            )
        if not bound or old_request is None or new_request is None or new_request == old_request:
            return
        capacity = _storage_of(((old.get("status") or {}).get("capacity")) or {})
        if capacity is not None and new_request < capacity:
            errs = fields.Errors()
            errs.forbidden(
                "spec.resources.requests.storage", "field can not be less than status.capacity"
            )
            _raise(resource, name, errs.causes)
        if new_request > old_request and not self._expandable(after):
            raise errors.APIError(
                403,
                "Forbidden",
                f'persistentvolumeclaims "{name}" is forbidden: {RESIZE_FORBIDDEN}',
                name=name,
                kind="persistentvolumeclaims",
            )

    def _expandable(self, spec: Json) -> bool:
        class_name = spec.get("storageClassName") or ""
        sc = self.store.get(CLASSES, "", class_name) if class_name else None
        return bool(sc and sc.get("allowVolumeExpansion"))

    def _default_class(self) -> str | None:
        items, _ = self.store.list(CLASSES, None)
        defaults = [
            c
            for c in items
            if ((c.get("metadata") or {}).get("annotations") or {}).get(IS_DEFAULT_CLASS) == "true"
        ]
        if not defaults:
            return None
        newest = max(
            defaults,
            key=lambda c: (c["metadata"].get("creationTimestamp", ""), c["metadata"]["name"]),
        )
        return str(newest["metadata"]["name"])


def _protect(obj: Json, finalizer: str) -> None:
    meta = obj.setdefault("metadata", {})
    if isinstance(meta, dict):
        finalizers = meta.get("finalizers") or []
        if isinstance(finalizers, list) and finalizer not in finalizers:
            meta["finalizers"] = [*finalizers, finalizer]


def _storage(spec: Json) -> Quantity | None:
    return _storage_of((spec.get("resources") or {}).get("requests") or {})


def _storage_of(values: Json) -> Quantity | None:
    raw = values.get("storage")
    if raw is None:
        return None
    try:
        return Quantity.parse(raw)
    except QuantityError:
        return None


def _raise(resource: ResourceDef, name: str, causes: list[Cause]) -> None:
    if causes:
        raise errors.invalid(resource.group, resource.kind, name, causes)
