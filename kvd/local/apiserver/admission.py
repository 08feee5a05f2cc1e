"""kvd's admission for kubevirt.io kinds, as KubeVirt's virt-api webhooks do it.

On create, KubeVirt's mutating webhook fills in its defaults and its validating webhook refuses
what the schema cannot express (a disk naming no volume, …). The local API server calls the
same `kvd.api` pipeline the CLI and the controller use, so a bad VMI is refused at the first
boundary — `kubectl apply` — with every field error, and `kubectl get -o yaml` shows the
defaults, as it does with KubeVirt.
"""

from __future__ import annotations

from typing import Any

from kvd.api import codec, kinds
from kvd.api.errors import ValidationError
from kvd.local.apiserver import errors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.registry import ResourceDef


def _load(resource: ResourceDef, obj: dict[str, Any]) -> Any:
    try:
        return kinds.load({k: v for k, v in obj.items() if k != "status"})
    except ValidationError as exc:
        causes = [Cause(_reason(e.message), e.message, e.path) for e in exc.errors]
        name = str((obj.get("metadata") or {}).get("name", ""))
        raise errors.invalid(resource.group, resource.kind, name, causes) from None


def _reason(message: str) -> str:
    if message.startswith("Required value"):
        return "FieldValueRequired"
    if message.startswith("Unsupported value"):
        return "FieldValueNotSupported"
    if message.startswith("Duplicate value"):
        return "FieldValueDuplicate"
    if message.startswith("field not supported by kvd"):
        return "FieldValueForbidden"
    return "FieldValueInvalid"


def _applies(resource: ResourceDef) -> bool:
    return resource.group == kinds.GROUP and resource.kind in kinds.KINDS


def _check_crd(resource: ResourceDef, obj: dict[str, Any]) -> None:
    from kvd.local.apiserver import crds  # noqa: PLC0415 - crds builds on objects, which imports us

    if crds.is_crd(resource):
        causes = crds.validate(obj)
        if causes:
            name = str((obj.get("metadata") or {}).get("name", ""))
            raise errors.invalid(resource.group, resource.kind, name, causes)


def on_create(resource: ResourceDef, obj: dict[str, Any]) -> list[str]:
    """Validate and default `obj` in place (spec only: metadata and status are the server's);
    return its deprecation warnings."""
    _check_crd(resource, obj)
    if not _applies(resource):
        return []
    warnings = kinds.warnings(obj)
    loaded = _load(resource, obj)
    obj["spec"] = codec.encode(loaded)["spec"]
    return warnings


def on_update(resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """An update must still be a valid object; defaults are not re-applied to a stored spec."""
    _check_crd(resource, new)
    if not _applies(resource):
        return []
    _load(resource, new)
    return kinds.warnings(new)
