"""kvd's admission for kubevirt.io kinds, as KubeVirt's virt-api webhooks do it.

On create, KubeVirt's mutating webhook fills in its defaults and its validating webhook refuses
what the schema cannot express (a disk naming no volume, …) and warns about what it still
accepts but has deprecated (`spec.running`). The local API server calls the same `kvd.api`
pipeline the CLI and the controller use, so a bad VMI is refused at the first boundary —
`kubectl apply` — with every field error, `kubectl get -o yaml` shows the defaults, and kubectl
prints KubeVirt's warnings, as it does with KubeVirt.

`KubeVirtAdmission` is one link of the admission chain the server gives `objects.Objects`.
"""

from __future__ import annotations

from typing import Any

from kvd.api import codec, deprecations, kinds
from kvd.api.errors import ValidationError
from kvd.local.apiserver import errors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.registry import ResourceDef


class KubeVirtAdmission:
    """Defaults, validates and warns about kubevirt.io objects; other kinds pass untouched."""

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> list[str]:
        """Validate and default `obj` in place (spec only: metadata and status are the
        server's)."""
        if not _applies(resource):
            return []
        warnings = deprecations.warnings(obj)  # before defaulting rewrites what they are about
        obj["spec"] = codec.encode(_load(resource, obj))["spec"]
        return warnings

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> list[str]:
        """An update must still be a valid object; defaults are not re-applied to a stored
        spec."""
        if not _applies(resource):
            return []
        _load(resource, new)
        return deprecations.warnings(new)


def _applies(resource: ResourceDef) -> bool:
    return resource.group == kinds.GROUP and resource.kind in kinds.KINDS


def _load(resource: ResourceDef, obj: dict[str, Any]) -> kinds.APIObject:
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
