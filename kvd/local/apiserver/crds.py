"""CustomResourceDefinitions: checked before they are stored, served exactly as long as they are.

A CRD is validated like kube-apiserver validates one (names, one storage version, structural
schemas); once stored it is added to the registry, and its status says it is Established with
its accepted names, which is what `kubectl wait --for=condition=established` waits for.

A CRD being deleted (a `deletionTimestamp`, finalizers pending) is still served. The teardown
(stop serving the resource, delete its objects) follows the store's DELETED event of the CRD,
as namespace cleanup follows the namespace's, so every way a CRD leaves the store tears it
down: a DELETE, the update that removes its last finalizer, the garbage collector. The teardown
is level-triggered: `reconcile` compares the served CRDs with the stored ones (by uid, so a CRD
deleted and created again before the event arrived still loses its old objects). At start-up
every stored CRD is served again, and objects that no served resource defines (a CRD deleted
just before the server stopped) are deleted.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from aiohttp import web

from kvd import logs
from kvd.local.apiserver import apply, errors, meta, patches, schema, selectors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.objects import MODIFIED_MESSAGE, FieldValidation, Objects, Target
from kvd.local.apiserver.registry import ResourceDef, from_crd
from kvd.local.apiserver.store import Conflict, NotFound, ResourceKey

log = logs.get_logger(__name__)

CRD_GROUP = "apiextensions.k8s.io"
SCALE_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")


def is_crd(resource: ResourceDef) -> bool:
    return resource.group == CRD_GROUP and resource.plural == "customresourcedefinitions"


def validate(crd: dict[str, Any]) -> list[Cause]:
    """Why kube-apiserver would refuse this CRD; empty when it is acceptable."""
    causes: list[Cause] = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "Required value", "spec")]
    group, names = spec.get("group"), spec.get("names") or {}
    plural = names.get("plural") if isinstance(names, dict) else None
    name = (crd.get("metadata") or {}).get("name")
    if not isinstance(group, str) or "." not in group:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{group}": should be a domain with at least one dot',
                "spec.group",
            )
        )
    for field in ("plural", "kind"):
        if not isinstance(names, dict) or not names.get(field):
            causes.append(Cause("FieldValueRequired", "Required value", f"spec.names.{field}"))
    if isinstance(group, str) and isinstance(plural, str) and name != f"{plural}.{group}":
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope")}": '
                'supported values: "Cluster", "Namespaced"',
                "spec.scope",
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        return [
            *causes,
            Cause(
                "FieldValueRequired",
                "Required value: must have exactly one version marked as storage version",
                "spec.versions",
            ),
        ]
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    for i, v in enumerate(versions):
        if not isinstance(v, dict) or not v.get("name"):
            causes.append(Cause("FieldValueRequired", "Required value", f"spec.versions[{i}].name"))
            continue
        body = (v.get("schema") or {}).get("openAPIV3Schema")
        if body is None:
            causes.append(
                Cause(
                    "FieldValueRequired",
                    "Required value: schemas are required",
                    f"spec.versions[{i}].schema.openAPIV3Schema",
                )
            )
            continue
        for problem in schema.check_structural(body):
            causes.append(
                Cause("FieldValueInvalid", problem, f"spec.versions[{i}].schema.openAPIV3Schema")
            )
    return causes


class CRDValidation:
    """The admission chain's link for CRDs: refuse one kube-apiserver would refuse."""

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> list[str]:
        self._check(resource, obj)
        return []

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> list[str]:
        self._check(resource, new)
        return []

    @staticmethod
    def _check(resource: ResourceDef, obj: dict[str, Any]) -> None:
        if not is_crd(resource):
            return
        causes = validate(obj)
        if causes:
            name = str((obj.get("metadata") or {}).get("name", ""))
            raise errors.invalid(resource.group, resource.kind, name, causes)


class CRDs:
    """Serves stored CRDs and tears down deleted ones; see the module docstring."""

    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.store = objects.store
        self.registry = objects.registry

    def _crd_resource(self) -> ResourceDef:
        r = self.registry.get(CRD_GROUP, "customresourcedefinitions")
        assert r is not None
        return r

    def load(self) -> None:
        """At start-up: serve every stored CRD, and delete what no served resource defines."""
        items, _ = self.store.list(self._crd_resource().key, None)
        for crd in items:
            self.registry.add_crd(from_crd(crd))
        for key in self.store.resources():
            if self.registry.get(key.group, key.resource) is None:
                log.warning("crd_objects_orphaned", resource=str(key))
                self._delete_objects(key)

    async def run(self) -> None:
        """Tear down each CRD that leaves the store, on its DELETED event; a resync now and
        then (`reconcile` is level-triggered, so a missed event costs nothing but time)."""
        watcher = self.store.watch(self._crd_resource().key, None, self.store.revision)
        try:
            self.reconcile()
            while True:
                event = await watcher.next(timeout=30.0)
                if event is None or event.type == "DELETED":
                    self.reconcile()
        finally:
            watcher.close()

    def reconcile(self) -> None:
        """Stop serving, and delete the objects of, every served CRD that is no longer stored
        (or was replaced by a new CRD of the same name)."""
        crd_key = self._crd_resource().key
        for served in self.registry.all():
            if served.crd_name is None:
                continue
            stored = self.store.get(crd_key, "", served.crd_name)
            if stored is not None and stored["metadata"].get("uid") == served.crd_uid:
                continue
            self.registry.remove_crd(served.group, served.plural)
            self._delete_objects(served.key)
            log.info("crd_removed", crd=served.crd_name, uid=served.crd_uid)

    def _delete_objects(self, key: ResourceKey) -> None:
        items, _ = self.store.list(key, None)
        for item in items:
            with contextlib.suppress(NotFound):
                self.store.delete(
                    key, item["metadata"].get("namespace", ""), item["metadata"]["name"]
                )

    def after_write(self, t: Target, obj: dict[str, Any], *, dry_run: bool) -> None:
        """Serve a CRD as soon as it is stored, and say so in its status."""
        if dry_run or not is_crd(t.resource) or t.subresource == "status":
            return
        if obj["metadata"].get("deletionTimestamp"):
            return  # being deleted (or gone): served until its DELETED event says otherwise
        self.reconcile()  # a CRD of this name deleted an instant ago takes its objects along
        self.registry.add_crd(from_crd(obj))
        self._establish(obj)

    def _establish(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        updated = copy.deepcopy(crd)
        names = crd["spec"]["names"]
        accepted = {k: v for k, v in names.items()}
        accepted.setdefault("singular", names["kind"].lower())
        accepted.setdefault("listKind", f"{names['kind']}List")
        when = meta.now()
        updated["status"] = {
            "acceptedNames": accepted,
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": when,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": when,
                },
            ],
        }
        # a condition that holds already keeps the time it began to hold, so a write that
        # changes nothing (a second server-side apply) stays a no-op
        before = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}
        for condition in updated["status"]["conditions"]:
            old = before.get(condition["type"])
            if old is not None and old.get("status") == condition["status"]:
                condition["lastTransitionTime"] = old.get("lastTransitionTime", when)
        if updated.get("status") == crd.get("status"):
            return
        try:
            stored = self.store.update(
                self._crd_resource().key,
                "",
                name,
                updated,
                expected=int(crd["metadata"]["resourceVersion"]),
            )
        except (Conflict, NotFound):
            return
        crd.clear()
        crd.update(self.objects.present(Target(self._crd_resource(), "v1", ""), stored))


def _path_get(obj: dict[str, Any], path: str) -> Any:
    node: Any = obj
    for part in path.lstrip(".").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _path_set(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.lstrip(".").split(".")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


async def scale(
    objects: Objects,
    t: Target,
    method: str,
    request: web.Request,
    *,
    validation: FieldValidation,
    dry_run: bool,
) -> dict[str, Any]:
    """The `scale` subresource of a CR: autoscaling/v1 Scale over the CRD's replica paths."""
    version = t.resource.version(t.version)
    assert version is not None and version.scale is not None
    paths = version.scale
    main = Target(t.resource, t.version, t.namespace, t.name)
    obj = objects.get(main)
    if method in ("PUT", "PATCH"):
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(
                f"the body of the request could not be decoded: {exc}"
            ) from None
        if method == "PATCH":
            # as kube-apiserver patches a custom resource's Scale: no strategic merge patch
            if request.content_type not in SCALE_PATCH_TYPES:
                raise errors.unsupported_media_type(request.content_type, SCALE_PATCH_TYPES)
            current = _scale_of(obj, paths)
            body = (
                patches.merge_patch(current, body)
                if request.content_type == "application/merge-patch+json"
                else patches.json_patch(current, body)
            )
        wanted_version = ((body.get("metadata") or {}) if isinstance(body, dict) else {}).get(
            "resourceVersion"
        )
        if wanted_version and wanted_version != obj["metadata"].get("resourceVersion"):
            # the Scale's resourceVersion is its object's: a stale one conflicts, as on any update
            raise errors.conflict(t.resource.group, t.resource.plural, t.name, MODIFIED_MESSAGE)
        replicas = (body.get("spec") or {}).get("replicas") if isinstance(body, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "autoscaling",
                "Scale",
                t.name,
                [
                    Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                        "spec.replicas",
                    )
                ],
            )
        _path_set(obj, paths["specReplicasPath"], replicas)
        # recorded in managedFields as a write of the scale subresource, as kube does
        scale_target = Target(t.resource, t.version, t.namespace, t.name, "scale")
        manager = apply.manager_name(
            request.query.get("fieldManager"), request.headers.get("User-Agent")
        )
        obj = objects.update(
            scale_target, obj, validation=validation, dry_run=dry_run, manager=manager
        ).object
    return _scale_of(obj, paths)


def _scale_of(obj: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    m = obj["metadata"]
    status: dict[str, Any] = {"replicas": _path_get(obj, paths["statusReplicasPath"]) or 0}
    if paths.get("labelSelectorPath"):
        selector = _path_get(obj, paths["labelSelectorPath"])
        if isinstance(selector, dict):  # a built-in workload's LabelSelector, as text
            selector = str(selectors.from_label_selector_object(selector))
        if selector:
            status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: m[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in m
        },
        "spec": {"replicas": _path_get(obj, paths["specReplicasPath"]) or 0},
        "status": status,
    }
