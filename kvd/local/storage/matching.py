"""Which PersistentVolume a claim may bind, as kube's PV controller chooses it (pure).

`find_volume` is `findMatchingVolume`: a volume pre-bound to the claim (its `claimRef` names the
claim, any uid or this one) wins if it fits; otherwise the smallest Available volume, not
pre-bound to anyone, whose class equals the claim's (both may be ""), whose volumeMode equals
the claim's, whose access modes include every one the claim asks for, whose capacity covers the
request, and whose labels match the claim's `selector`. A claim naming a volume (`volumeName`)
is only ever matched with that one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kvd.api import labels as labelsel
from kvd.api.quantity import Quantity, QuantityError

Json = dict[str, Any]


def storage(resources: Json | None) -> int | None:
    """bytes of `{"storage": q}` (a PV's capacity, a claim's requests); None when absent."""
    raw = (resources or {}).get("storage")
    if raw is None:
        return None
    try:
        return Quantity.parse(raw).bytes()
    except QuantityError:
        return None


def claim_class(claim: Json) -> str:
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def volume_mode(obj: Json) -> str:
    return str((obj.get("spec") or {}).get("volumeMode") or "Filesystem")


def claim_ref_matches(volume: Json, claim: Json) -> bool:
    """The volume's claimRef names this claim (a ref without uid is a pre-binding)."""
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return False
    meta = claim["metadata"]
    return (
        ref.get("name") == meta["name"]
        and ref.get("namespace") == meta["namespace"]
        and ref.get("uid") in (None, "", meta.get("uid"))
    )


def why_not(volume: Json, claim: Json) -> str | None:
    """None when `volume` fits `claim`, else what does not."""
    spec, want = volume.get("spec") or {}, claim.get("spec") or {}
    if (spec.get("storageClassName") or "") != claim_class(claim):
        return "storage class differs"
    if volume_mode(volume) != volume_mode(claim):
        return "volumeMode differs"
    if not set(want.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return "access modes do not cover the claim's"
    needed = storage((want.get("resources") or {}).get("requests")) or 0
    have = storage(spec.get("capacity"))
    if have is None or have < needed:
        return "capacity too small"
    selector = want.get("selector")
    if selector is not None:
        labels = (volume.get("metadata") or {}).get("labels") or {}
        try:
            parsed = labelsel.label_selector(
                selector.get("matchLabels") or {},
                [
                    (str(e.get("key")), str(e.get("operator")), e.get("values"))
                    for e in selector.get("matchExpressions") or []
                ],
            )
            if not parsed.matches(labels):
                return "labels do not match the selector"
        except labelsel.InvalidRequirement:
            return "the claim's selector is invalid"
    return None


def find_volume(claim: Json, volumes: Iterable[Json]) -> Json | None:
    named = (claim.get("spec") or {}).get("volumeName")
    best: Json | None = None
    for volume in volumes:
        meta = volume.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        if named and meta.get("name") != named:
            continue
        if claim_ref_matches(volume, claim):
            if why_not(volume, claim) is None:
                return volume
            continue
        if (volume.get("spec") or {}).get("claimRef"):
            continue  # someone else's, or pre-bound to someone else
        if (volume.get("status") or {}).get("phase", "Available") != "Available":
            continue
        if why_not(volume, claim) is not None:
            continue
        if best is None or (storage(volume["spec"].get("capacity")) or 0) < (
            storage(best["spec"].get("capacity")) or 0
        ):
            best = volume
    return best
