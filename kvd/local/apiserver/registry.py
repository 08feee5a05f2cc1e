"""Which resources the server serves: the built-in kinds, and those CRDs add at run time.

A `ResourceDef` is everything routing, discovery, validation and table printing need to know
about one resource. Built-in kinds are listed here; a CustomResourceDefinition becomes a
`ResourceDef` through `from_crd` when it is created, and stops being served when deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from kvd.local.apiserver.store import ResourceKey

RBAC_GROUP = "rbac.authorization.k8s.io"
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)


# The scale subresource of apps workloads (autoscaling/v1 Scale; the selector printed as text)
_REPLICAS_SCALE = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".spec.selector",
}

# Built-in kinds whose kube-apiserver strategy sets metadata.generation at create and bumps it
# when the spec changes (pods since PodGeneration, GA in 1.35); the others have none.
GENERATION_KINDS: Final = frozenset(
    {
        ("", "pods"),
        ("", "replicationcontrollers"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("networking.k8s.io", "ingresses"),
        ("policy", "poddisruptionbudgets"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    }
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class VersionDef:
    name: str
    served: bool = True
    storage: bool = True
    schema: dict[str, Any] | None = None  # openAPIV3Schema for CRDs
    columns: tuple[Column, ...] = ()
    subresources: frozenset[str] = frozenset()
    scale: dict[str, str] | None = None  # specReplicasPath, statusReplicasPath, labelSelectorPath
    deprecation_warning: str | None = None


@dataclass(frozen=True)
class ResourceDef:
    group: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    versions: tuple[VersionDef, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # field selectors beyond metadata.name / metadata.namespace: label → path in the object
    field_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    crd_name: str | None = None
    crd_uid: str | None = None  # which CRD of that name: one deleted and made again is another
    # a second API for another resource's objects (events.k8s.io Events are core Events):
    # read and written in that resource's store, converted by `views`
    stored_as: ResourceKey | None = None
    # names are any URL path segment, not DNS subdomains (RBAC's: "system:discovery")
    path_segment_names: bool = False

    @property
    def key(self) -> ResourceKey:
        """Where its objects are stored: its own key, or the viewed resource's."""
        return self.stored_as or ResourceKey(self.group, self.plural)

    @property
    def is_view(self) -> bool:
        return self.stored_as is not None

    @property
    def tracks_generation(self) -> bool:
        """Whether its objects have `metadata.generation`: custom resources and the built-in
        kinds whose kube strategy sets it (not ConfigMaps, Secrets, Namespaces, Nodes, …)."""
        return self.crd_name is not None or (self.group, self.plural) in GENERATION_KINDS

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def version(self, name: str) -> VersionDef | None:
        return next((v for v in self.versions if v.name == name and v.served), None)

    @property
    def storage_version(self) -> str:
        return next(v.name for v in self.versions if v.storage)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    categories: tuple[str, ...] = (),
    field_labels: dict[str, tuple[str, ...]] | None = None,
    stored_as: ResourceKey | None = None,
    path_segment_names: bool = False,
    scale: dict[str, str] | None = None,
) -> ResourceDef:
    return ResourceDef(
        group=group,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        versions=(VersionDef(version, subresources=frozenset(subresources), scale=scale),),
        short_names=short_names,
        categories=categories,
        verbs=verbs,
        field_labels=field_labels or {},
        stored_as=stored_as,
        path_segment_names=path_segment_names,
    )


_EVENT_FIELDS = {
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "involvedObject.apiVersion": ("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": ("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": ("involvedObject", "fieldPath"),
    "reason": ("reason",),
    "reportingComponent": ("reportingComponent",),
    "source": ("source", "component"),
    "type": ("type",),
}
# events.k8s.io's field selectors, mapped onto the stored core Event as kube maps them
_EVENTS_V1_FIELDS = {
    **{
        f"regarding.{part}": ("involvedObject", part)
        for part in (
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        )
    },
    "reason": ("reason",),
    "reportingController": ("reportingComponent",),
    "source": ("source", "component"),
    "type": ("type",),
}

BUILTINS: tuple[ResourceDef, ...] = (
    _builtin(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        field_labels={"status.phase": ("status", "phase")},
    ),
    _builtin(
        "",
        "v1",
        "pods",
        "Pod",
        short_names=("po",),
        subresources=("status", "log", "exec", "binding"),  # log and exec: kubelet.py
        categories=("all",),
        field_labels={
            "spec.nodeName": ("spec", "nodeName"),
            "spec.restartPolicy": ("spec", "restartPolicy"),
            "spec.schedulerName": ("spec", "schedulerName"),
            "spec.serviceAccountName": ("spec", "serviceAccountName"),
            "status.phase": ("status", "phase"),
            "status.podIP": ("status", "podIP"),
            "status.nominatedNodeName": ("status", "nominatedNodeName"),
        },
    ),
    _builtin(
        "",
        "v1",
        "nodes",
        "Node",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        field_labels={"spec.unschedulable": ("spec", "unschedulable")},
    ),
    _builtin("", "v1", "events", "Event", short_names=("ev",), field_labels=_EVENT_FIELDS),
    _builtin("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _builtin("", "v1", "secrets", "Secret", field_labels={"type": ("type",)}),
    _builtin(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        short_names=("sa",),
        subresources=("token",),  # TokenRequest: serviceaccounts.tokenrequest
    ),
    _builtin(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        subresources=("status",),
    ),
    _builtin(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        namespaced=False,
        short_names=("pv",),
        subresources=("status",),
    ),
    _builtin(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        short_names=("ev",),
        field_labels=_EVENTS_V1_FIELDS,
        stored_as=ResourceKey("", "events"),
    ),
    _builtin(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        namespaced=False,
        short_names=("sc",),
    ),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        subresources=("status",),
    ),
    _builtin(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "TokenReview",
        namespaced=False,
        verbs=CREATE_ONLY,
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        namespaced=False,
        verbs=CREATE_ONLY,
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=CREATE_ONLY,
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        namespaced=False,
        verbs=CREATE_ONLY,
    ),
    _builtin(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        namespaced=False,
        verbs=CREATE_ONLY,
    ),
    # Stored, with nothing acting on them yet: `kubectl apply --prune` without an allowlist maps
    # every kind of its default list before it prunes anything, so each must be served. Services
    # (and what fills Endpoints and EndpointSlices), PodDisruptionBudgets, APIServices and the
    # apps/batch controllers come with their own issues.
    _builtin("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
    _builtin(
        "",
        "v1",
        "services",
        "Service",
        short_names=("svc",),
        subresources=("status",),
        categories=("all",),
    ),
    _builtin(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        short_names=("rc",),
        subresources=("status",),
        categories=("all",),
    ),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        subresources=("status", "scale"),
        categories=("all",),
        scale=_REPLICAS_SCALE,
    ),
    _builtin(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        subresources=("status", "scale"),
        categories=("all",),
        scale=_REPLICAS_SCALE,
    ),
    _builtin(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        short_names=("ds",),
        subresources=("status",),
        categories=("all",),
    ),
    _builtin(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        subresources=("status",),
        categories=("all",),
    ),
    # DaemonSets' history (their rollout undo reads it); Deployments use ReplicaSets for theirs
    _builtin("apps", "v1", "controllerrevisions", "ControllerRevision"),
    _builtin(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        field_labels={"addressType": ("addressType",)},
    ),
    _builtin(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        subresources=("status",),
    ),
    # The aggregation layer's registrations (kube-aggregator serves them; so does this server).
    _builtin(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        namespaced=False,
        subresources=("status",),
        categories=("api-extensions",),
    ),
    _builtin("batch", "v1", "jobs", "Job", subresources=("status",), categories=("all",)),
    _builtin(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        subresources=("status",),
        categories=("all",),
    ),
    _builtin(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        short_names=("ing",),
        subresources=("status",),
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        verbs=CREATE_ONLY,
    ),
    # RBAC (`rbac/`): what the authorizer reads; kube gives them no short names.
    *(
        _builtin(RBAC_GROUP, "v1", plural, kind, namespaced=namespaced, path_segment_names=True)
        for plural, kind, namespaced in (
            ("roles", "Role", True),
            ("rolebindings", "RoleBinding", True),
            ("clusterroles", "ClusterRole", False),
            ("clusterrolebindings", "ClusterRoleBinding", False),
        )
    ),
)
# Reviews are answered, never stored.
VIRTUAL = frozenset(
    {
        "tokenreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "selfsubjectreviews",
    }
)


def from_crd(crd: dict[str, Any]) -> ResourceDef:
    """The resource a CustomResourceDefinition defines (its spec is assumed validated)."""
    spec = crd["spec"]
    names = spec["names"]
    versions = []
    for v in spec["versions"]:
        subresources = v.get("subresources") or {}
        versions.append(
            VersionDef(
                name=v["name"],
                served=bool(v.get("served", True)),
                storage=bool(v.get("storage", False)),
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                columns=tuple(
                    Column(
                        name=c["name"],
                        type=c.get("type", "string"),
                        json_path=c["jsonPath"],
                        description=c.get("description", ""),
                        priority=int(c.get("priority", 0)),
                        format=c.get("format", ""),
                    )
                    for c in v.get("additionalPrinterColumns") or []
                ),
                subresources=frozenset(k for k in ("status", "scale") if k in subresources),
                scale=subresources.get("scale"),
                deprecation_warning=(
                    v.get("deprecationWarning")
                    or (
                        f"{spec['group']}/{v['name']} {names['kind']} is deprecated"
                        if v.get("deprecated")
                        else None
                    )
                ),
            )
        )
    return ResourceDef(
        group=spec["group"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        versions=tuple(versions),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        crd_name=crd["metadata"]["name"],
        crd_uid=crd["metadata"].get("uid"),
    )


class Registry:
    """The served resources; CRDs come and go while the server runs."""

    def __init__(self, builtins: Iterable[ResourceDef] = BUILTINS) -> None:
        self._lock = threading.Lock()
        self._builtins = {(r.group, r.plural): r for r in builtins}
        self._crds: dict[tuple[str, str], ResourceDef] = {}
        self._revision = 0

    @property
    def revision(self) -> int:
        """Moves whenever what is served changes (OpenAPI documents are cached until it does)."""
        with self._lock:
            return self._revision

    def add_crd(self, resource: ResourceDef) -> None:
        with self._lock:
            self._crds[(resource.group, resource.plural)] = resource
            self._revision += 1

    def remove_crd(self, group: str, plural: str) -> None:
        with self._lock:
            if self._crds.pop((group, plural), None) is not None:
                self._revision += 1

    def get(self, group: str, plural: str) -> ResourceDef | None:
        with self._lock:
            return self._builtins.get((group, plural)) or self._crds.get((group, plural))

    def all(self) -> list[ResourceDef]:
        with self._lock:
            return [*self._builtins.values(), *self._crds.values()]

    def group_versions(self) -> dict[str, list[str]]:
        """group → served versions, preferred (storage) first; "" is the core group."""
        out: dict[str, list[str]] = {}
        for r in self.all():
            versions = out.setdefault(r.group, [])
            ordered = sorted((v for v in r.versions if v.served), key=lambda v: not v.storage)
            for v in ordered:
                if v.name not in versions:
                    versions.append(v.name)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceDef]:
        return [r for r in self.all() if r.group == group and r.version(version) is not None]
