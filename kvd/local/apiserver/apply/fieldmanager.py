"""kube-apiserver's field manager: managedFields on every write, and server-side apply.

`FieldManager` is made per request target (kind, version, subresource) by `for_target`;
`objects` calls it once the new object is final and before it is stored:

* `track_update(live, new, manager)` for creates, updates and non-apply patches: the writer's
  `Update` entry gains what it changed. managedFields a client sends are taken as the new list
  when they decode (that is how clients edit them), ignored when they do not, and cleared by
  `[]` or `[{}]`; a `/status` write never takes them from the request. An object stored
  without managedFields (written before they were tracked, or cleared) stays untracked until
  its first apply, as in kube.
* `apply(live, config, manager, force)` merges an applied configuration and returns the
  object to store, or raises the 409 Conflict kube answers.

Around them, kube's rules: `metadata.name`, `uid`, `resourceVersion`, ... never enter a set;
an applier's first apply to an untracked object first credits the existing fields to
`before-first-apply`; at most ten update entries; and for the manager `kubectl`, interplay with
client-side apply's `kubectl.kubernetes.io/last-applied-configuration` (kept in sync with the
applied configuration, and conflicts with fields that annotation explains are forgiven).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kvd import logs
from kvd.local.apiserver import errors, meta
from kvd.local.apiserver.apply import fieldpath, managedfields, shapes, typed, updater
from kvd.local.apiserver.apply.fieldpath import Set
from kvd.local.apiserver.apply.shapes import Shape
from kvd.local.apiserver.apply.updater import Manager, Managers
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.registry import ResourceDef

log = logs.get_logger(__name__)

APPLY_PATCH: Final = "application/apply-patch+yaml"
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
BEFORE_FIRST_APPLY: Final = "before-first-apply"
# kube's stripMetaManager: never part of anyone's fields.
_STRIP: Final = Set.of(
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    *(
        ("f:metadata", "f:" + name)
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        )
    ),
)
# The object a create starts from, as kube's typed zero values have it: structs that are not
# pointers are present, so creating a Pod does not add `spec` (only what is inside it).
_ZERO: Final[dict[str, dict[str, Any]]] = {
    "Pod": {"spec": {"containers": None}, "status": {}},
    "Service": {"spec": {}, "status": {"loadBalancer": {}}},
    "Namespace": {"spec": {}, "status": {}},
    "Node": {"spec": {}, "status": {}},
    "PersistentVolumeClaim": {"spec": {"resources": {}}, "status": {}},
    "PersistentVolume": {"spec": {}, "status": {}},
    "Lease": {"spec": {}},
}


def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    """The manager a write is recorded under: `?fieldManager=`, else the user agent's product
    (what precedes the first `/`, printable characters only, at most 128 bytes)."""
    if field_manager:
        return field_manager
    out = ""
    for ch in (user_agent or "").split("/")[0]:
        if not ch.isprintable():
            continue
        if len((out + ch).encode()) > managedfields.MAX_MANAGER_LENGTH:
            break
        out += ch
    return out


def check_field_manager(value: str | None, options_kind: str) -> None:
    """422 for a `fieldManager` kube refuses (too long, unprintable)."""
    causes = managedfields.manager_causes(value or "", "fieldManager")
    if causes:
        raise errors.invalid("meta.k8s.io", options_kind, "", causes)


@dataclass(frozen=True)
class FieldManager:
    resource: ResourceDef
    version: str
    subresource: str
    shape: Shape

    @property
    def api_version(self) -> str:
        return self.resource.api_version(self.version)

    def _ignored(self, obj: Mapping[str, Any] | None = None) -> Set:
        """What this endpoint does not write, so nobody owns it through it."""
        if self.subresource == "status":
            return Set.of(*(("f:" + k,) for k in (obj or {}) if k not in ("status", "metadata")))
        version = self.resource.version(self.version)
        if version is not None and "status" in version.subresources:
            return Set.of(("f:status",))
        return Set()

    def _zero(self) -> dict[str, Any]:
        if self.resource.crd_name is not None:
            return {"apiVersion": self.api_version, "kind": self.resource.kind}
        return copy.deepcopy(_ZERO.get(self.resource.kind, {}))

    # --- updates -------------------------------------------------------------------------------

    def track_update(self, live: dict[str, Any] | None, new: dict[str, Any], manager: str) -> None:
        """Set `new`'s managedFields after an update from `live` (None: a create)."""
        metadata = new.setdefault("metadata", {})
        sent = metadata.pop("managedFields", None)
        before = _without_managed_fields(live) if live is not None else self._zero()
        try:
            comparison = typed.compare(before, _without_managed_fields(new), self.shape)
        except typed.TypedError as exc:
            # kube's UpdateNoErrors: never fail a write over its bookkeeping; clear it instead
            log.warning("managed_fields_reset", kind=self.resource.kind, error=str(exc))
            return
        kept = (live or {}).get("metadata", {}).get("managedFields")
        if comparison.same() and (sent == kept or self.subresource) and live is not None:
            if kept is not None:  # a write that changes nothing changes no owner either
                metadata["managedFields"] = kept
            return
        managers = self._managers_for_update(live, sent)
        if not managers and live is not None:
            return  # untracked (or just cleared): stays so until an apply
        writer = Manager(manager or "unknown", "Update", self.api_version, self.subresource)
        managers = updater.update(
            managers,
            before,
            new,
            self.shape,
            writer=writer,
            api_version=self.api_version,
            ignored=self._ignored(new),
            strip=_STRIP,
            now=meta.now,
            comparison=comparison,
        )
        entries = managedfields.encode(managedfields.cap(managers))
        if entries:
            metadata["managedFields"] = entries

    def _managers_for_update(self, live: dict[str, Any] | None, sent: Any) -> Managers:
        if not self.subresource:
            if managedfields.is_reset(sent):
                return {}
            try:
                managers = managedfields.decode(sent)
            except managedfields.DecodeError:
                managers = {}
            if managers:
                return managers
        try:
            return managedfields.decode((live or {}).get("metadata", {}).get("managedFields"))
        except managedfields.DecodeError:
            return {}

    # --- apply ---------------------------------------------------------------------------------

    def apply(
        self, live: dict[str, Any] | None, config: dict[str, Any], manager: str, *, force: bool
    ) -> dict[str, Any]:
        """The object after applying `config` (a new dict; `live` None: a create)."""
        self._check_config(config)
        try:
            managers = managedfields.decode((live or {}).get("metadata", {}).get("managedFields"))
        except managedfields.DecodeError as exc:
            raise APIError(
                500, "InternalError", f"failed to decode managed fields: {exc}"
            ) from None
        base = _without_managed_fields(live) if live is not None else self._zero()
        applier = Manager(manager, "Apply", "", self.subresource)
        try:
            if not managers and live is not None:
                managers = self._before_first_apply(base)
            try:
                merged, managers = self._apply(base, config, managers, applier, force=force)
            except updater.Conflicts as conflicts:
                if manager != "kubectl" or not self._forgiven(base, conflicts):
                    raise _conflict_error(conflicts) from None
                merged, managers = self._apply(base, config, managers, applier, force=True)
        except typed.TypedError as exc:
            kind = f"{self.resource.group}/{self.version}, Kind={self.resource.kind}"
            raise APIError(
                500, "", f"failed to create typed patch object ({kind}): {exc}"
            ) from None
        out: dict[str, Any] = copy.deepcopy(merged)
        metadata = out.setdefault("metadata", {})
        annotations = metadata.get("annotations")
        if manager == "kubectl" and isinstance(annotations, dict) and annotations.get(LAST_APPLIED):
            annotations[LAST_APPLIED] = _last_applied(config)
        entries = managedfields.encode(managers)
        if entries:
            metadata["managedFields"] = entries
        else:
            metadata.pop("managedFields", None)
        return out

    def _apply(
        self,
        base: dict[str, Any],
        config: dict[str, Any],
        managers: Managers,
        applier: Manager,
        *,
        force: bool,
    ) -> tuple[Any, Managers]:
        return updater.apply(
            managers,
            base,
            config,
            self.shape,
            applier=applier,
            api_version=self.api_version,
            ignored=self._ignored(config),
            strip=_STRIP,
            force=force,
            now=meta.now,
        )

    def _before_first_apply(self, live: dict[str, Any]) -> Managers:
        """An object nobody is recorded to own yet: its fields are credited to
        `before-first-apply`, so the first applier sees conflicts where it changes them."""
        return updater.update(
            {},
            self._zero(),
            live,
            self.shape,
            writer=Manager(BEFORE_FIRST_APPLY, "Update", self.api_version, self.subresource),
            api_version=self.api_version,
            ignored=self._ignored(live),
            strip=_STRIP,
            now=meta.now,
        )

    def _check_config(self, config: dict[str, Any]) -> None:
        if config.get("apiVersion") != self.api_version:
            raise errors.bad_request(
                "Incorrect version specified in apply patch. Specified patch version: "
                f"{config.get('apiVersion') or ''}, expected: {self.api_version}"
            )
        if config.get("kind") != self.resource.kind:
            raise errors.bad_request(
                f"the kind in the apply patch ({config.get('kind') or ''}) does not match the "
                f"expected kind ({self.resource.kind})"
            )
        metadata = config.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise errors.bad_request("metadata must be an object")
        if isinstance(metadata, dict) and metadata.get("managedFields") is not None:
            raise errors.bad_request("metadata.managedFields must be nil")

    def _forgiven(self, live: dict[str, Any], conflicts: updater.Conflicts) -> bool:
        """kube's lastAppliedManager: `kubectl` moving from client-side to server-side apply
        does not conflict over fields its last-applied-configuration set to their live value."""
        annotations = live.get("metadata", {}).get("annotations") or {}
        try:
            last = json.loads(annotations.get(LAST_APPLIED) or "")
        except ValueError:
            return False
        if not isinstance(last, dict) or last.get("apiVersion") != self.api_version:
            return False
        try:
            allowed = typed.to_set(last, self.shape)
            comparison = typed.compare(last, live, self.shape)
        except typed.TypedError:
            return False
        allowed = allowed.difference(comparison.modified).difference(comparison.added)
        allowed = allowed.difference(comparison.removed)
        return all(allowed.has(path) for _, path in conflicts.conflicts)


def for_target(resource: ResourceDef, version: str, subresource: str = "") -> FieldManager:
    """The field manager of one endpoint."""
    if resource.crd_name is not None:
        version_def = resource.version(version)
        shape = shapes.custom(version_def.schema if version_def is not None else None)
    else:
        shape = shapes.builtin(resource.kind, resource.group)
    return FieldManager(resource, version, subresource, shape)


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    return {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


def _last_applied(config: dict[str, Any]) -> str:
    """The applied configuration as client-side apply would have recorded it."""
    annotated = copy.deepcopy(config)
    annotations = (annotated.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    return fieldpath.go_json(annotated) + "\n"  # as client-go's JSON encoder writes it


def _describe(manager: Manager) -> str:
    """How kube names a manager in a conflict: `"name"`, with its subresource, and for an
    update the version it wrote with."""
    out = json.dumps(manager.name, ensure_ascii=False)
    if manager.subresource:
        out += f' with subresource "{manager.subresource}"'
    if manager.operation == "Update":
        out += f" using {manager.api_version}"
    return out


def _conflict_error(conflicts: updater.Conflicts) -> APIError:
    """kube's 409 for an apply conflict: one cause per field, the message grouped by manager."""
    named = sorted(
        ((_describe(m), fieldpath.path_string(p)) for m, p in conflicts.conflicts),
        key=lambda c: c[0],
    )
    causes = [
        errors.Cause("FieldManagerConflict", f"conflict with {who}", path) for who, path in named
    ]
    if len(named) == 1:
        message = f"Apply failed with 1 conflict: conflict with {named[0][0]}: {named[0][1]}"
    else:
        lines = []
        for who in dict.fromkeys(w for w, _ in named):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {path}" for w, path in named if w == who]
        message = f"Apply failed with {len(named)} conflicts: " + "\n".join(lines)
    return APIError(409, "Conflict", message, causes=causes)
