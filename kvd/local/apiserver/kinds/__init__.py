"""Built-in kinds read and checked as kube-apiserver reads and checks them.

`BuiltinKinds` is the step `objects.Objects` runs for every write of a built-in kind (and for the
metadata of custom resources): first `decode`, as kube's decoder reads a body into the kind's Go
type (`decoding`: wrong JSON types refused with Go's words, unknown fields dropped and reported
for `fieldValidation`), then, once admission has run, `validate`, kube's validation rules for
the fields kvd's users touch (`data` for ConfigMaps and Secrets, `pods` for Pods, `rbac` for
roles and bindings, `apps` for workloads and disruption budgets, `services` for Services,
`storage` for claims, volumes and classes, annotation size for everything), whose causes make a
422 Invalid. The types come from Kubernetes' own OpenAPI definitions (`openapi.definitions`).
Defaults kube's decoder sets (RBAC bindings, apps workloads, Services) are set in `decode`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from kvd.local.apiserver.errors import APIError, Cause
from kvd.local.apiserver.kinds import apps, data, fields, pods, rbac, services, storage
from kvd.local.apiserver.kinds.decoding import Compiled, DecodeError, decode
from kvd.local.apiserver.openapi.definitions import OBJECT_META, Definitions
from kvd.local.apiserver.registry import ResourceDef

MAX_ANNOTATIONS = 256 * 1024  # apimachinery's TotalAnnotationSizeLimitB


def _pod(obj: dict[str, Any], errs: fields.Errors) -> None:
    spec = obj.get("spec")
    pods.pod_spec(spec if isinstance(spec, dict) else {}, errs)


# kube's validation of a built-in kind's whole object (never of a subresource's write)
_WHOLE_OBJECT: dict[tuple[str, str], Callable[[dict[str, Any], fields.Errors], None]] = {
    ("", "ConfigMap"): data.config_map,
    ("", "Secret"): data.secret,
    ("", "Service"): services.validate,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): storage.claim,
    ("", "PersistentVolume"): storage.volume,
    ("policy", "PodDisruptionBudget"): apps.disruption_budget,
    ("storage.k8s.io", "StorageClass"): storage.storage_class,
}


class BuiltinKinds:
    def __init__(self, definitions: Callable[[], Definitions]) -> None:
        self._definitions = definitions

    @functools.cached_property
    def _compiled(self) -> Compiled:
        return Compiled(self._definitions())

    def _definition(self, resource: ResourceDef, version: str) -> str | None:
        return self._definitions().name_of(resource.group, version, resource.kind)

    def decode(
        self, resource: ResourceDef, version: str, obj: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """`obj` as kube decodes it, and the paths of the fields it dropped as unknown. A body
        that is not the kind at all is a 400, worded as kube words it."""
        if resource.crd_name is not None:
            # a custom resource's schema is the CRD's; its metadata is still ObjectMeta
            metadata = obj.get("metadata")
            if not isinstance(metadata, dict):
                return obj, []
            try:
                pruned, unknown = decode(self._compiled, OBJECT_META, metadata)
            except DecodeError:
                return obj, []  # left to the metadata checks, which word it for CRs
            return {**obj, "metadata": pruned}, [f"metadata.{p}" for p in unknown]
        name = self._definition(resource, version)
        if name is None:
            return obj, []
        try:
            decoded, unknown = decode(self._compiled, name, obj)
        except DecodeError as exc:
            raise APIError(
                400,
                "BadRequest",
                f'{resource.kind} in version "{version}" cannot be handled as a '
                f"{resource.kind}: {exc}",
            ) from None
        if resource.group == "" and resource.kind == "Secret":
            data.merge_string_data(decoded)
        elif resource.group == rbac.GROUP:
            rbac.default(resource.kind, decoded)
        elif resource.group == apps.GROUP:
            apps.default(resource.kind, decoded)
        elif resource.group == "" and resource.kind == "Service":
            services.default(decoded)
        return decoded, unknown

    def validate(
        self, resource: ResourceDef, obj: dict[str, Any], *, subresource: str = ""
    ) -> list[Cause]:
        """kube's validation of the object about to be stored; empty when it passes."""
        errs = fields.Errors()
        annotations = (obj.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict):
            size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
            if size > MAX_ANNOTATIONS:
                errs.too_long("metadata.annotations", MAX_ANNOTATIONS)
        if resource.crd_name is not None:
            return errs.causes
        if resource.group == rbac.GROUP:
            rbac.validate(resource.kind, obj, errs)
        if not subresource:
            if resource.group == apps.GROUP:
                apps.validate(resource.kind, obj, errs)
            elif check := _WHOLE_OBJECT.get((resource.group, resource.kind)):
                check(obj, errs)
        return errs.causes
