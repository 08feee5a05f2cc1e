"""PersistentVolumeClaims, PersistentVolumes and StorageClasses checked by the rules of kube's
pkg/apis/core/validation and pkg/apis/storage/validation that kvd's users run into.

Claims: at least one access mode, each a known one; `resources.requests.storage` present and
positive; a known volumeMode. Volumes: a capacity and access modes, exactly one source, a known
reclaim policy and volumeMode, and a node affinity for a `local` volume. Classes: a provisioner,
a known reclaim policy and binding mode. What may change on update is admission's
(`apiserver.persistentvolumes`), which sees the old object.
"""

from __future__ import annotations

from typing import Any

from kvd.api.quantity import Quantity, QuantityError
from kvd.local.apiserver.kinds import fields

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
CLASS_RECLAIM_POLICIES = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
# the PV sources kube knows (spec keys besides these are not sources)
_NOT_SOURCES = frozenset(
    {
        "capacity",
        "accessModes",
        "claimRef",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "mountOptions",
        "volumeMode",
        "nodeAffinity",
        "volumeAttributesClassName",
    }
)


def claim(obj: dict[str, Any], errs: fields.Errors) -> None:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    _access_modes(spec, "spec.accessModes", errs)
    requests = (spec.get("resources") or {}).get("requests") or {}
    if "storage" not in requests:
        errs.required("spec.resources[storage]")
    else:
        _positive(requests["storage"], "spec.resources[storage]", errs)
    _volume_mode(spec, errs)


def volume(obj: dict[str, Any], errs: fields.Errors) -> None:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    capacity = spec.get("capacity") or {}
    if "storage" not in capacity:
        errs.required("spec.capacity")
    else:
        _positive(capacity["storage"], "spec.capacity[storage]", errs)
    _access_modes(spec, "spec.accessModes", errs)
    sources = [k for k in spec if k not in _NOT_SOURCES and spec[k] is not None]
    if not sources:
        errs.required("spec", "must specify a volume type")
    for extra in sources[1:]:
        errs.forbidden(f"spec.{extra}", "may not specify more than 1 volume type")
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy is not None and policy not in RECLAIM_POLICIES:
        errs.not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES)
    _volume_mode(spec, errs)
    if "local" in sources and not spec.get("nodeAffinity"):
        errs.required("spec.nodeAffinity", "Local volume requires node affinity")


def storage_class(obj: dict[str, Any], errs: fields.Errors) -> None:
    if not obj.get("provisioner"):
        errs.required("provisioner")
    policy = obj.get("reclaimPolicy")
    if policy is not None and policy not in CLASS_RECLAIM_POLICIES:
        errs.not_supported("reclaimPolicy", policy, CLASS_RECLAIM_POLICIES)
    mode = obj.get("volumeBindingMode")
    if mode is not None and mode not in BINDING_MODES:
        errs.not_supported("volumeBindingMode", mode, BINDING_MODES)


def _access_modes(spec: dict[str, Any], path: str, errs: fields.Errors) -> None:
    modes = spec.get("accessModes") or []
    if not modes:
        errs.required(path, "at least 1 access mode is required")
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.not_supported(path, mode, ACCESS_MODES)
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.forbidden(path, "may not use ReadWriteOncePod with other access modes")


def _volume_mode(spec: dict[str, Any], errs: fields.Errors) -> None:
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.not_supported("spec.volumeMode", mode, VOLUME_MODES)


def _positive(raw: Any, path: str, errs: fields.Errors) -> None:
    try:
        value = Quantity.parse(raw)
    except QuantityError:
        errs.invalid(path, raw, "must be a quantity")
        return
    if value.value <= 0:
        errs.invalid(path, raw, "must be greater than zero")
