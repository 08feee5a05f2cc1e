"""Create, read, update and patch, with kube-apiserver's rules for each.

`Objects` sits between HTTP and the store: it checks names, namespaces and apiVersion/kind,
sets the server-owned metadata, keeps status and spec apart when a status subresource exists,
bumps `generation` only for spec changes, applies CRD schemas (default, prune, validate), and
turns store errors into API errors. Deletion, finalizers and garbage collection live in
`deletion`.

Policy is not decided here: the server hands `Objects` an admission chain (`AdmissionPlugin`s,
kube-apiserver's admission plugins and webhooks), which sees every create and every update of a
main resource before the schema does, may default or refuse it, and may warn the client. It
also hands it a `KindCodec` (`kinds.BuiltinKinds`): every body is decoded by it before
admission, as kube-apiserver's decoder reads it into the kind's Go type (unknown fields then
refused, warned about or dropped by `fieldValidation`), and validated by it after admission.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from kvd.local.apiserver import apply, documents, errors, meta, namespaces, patches, schema, views
from kvd.local.apiserver.errors import APIError, Cause
from kvd.local.apiserver.registry import Registry, ResourceDef
from kvd.local.apiserver.store import AlreadyExists, Conflict, NotFound, Store

FieldValidation = Literal["Strict", "Warn", "Ignore"]
MODIFIED_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    apply.APPLY_PATCH,
)


@dataclass(frozen=True)
class Target:
    resource: ResourceDef
    version: str
    namespace: str  # "" for cluster-scoped
    name: str = ""
    subresource: str = ""


class AdmissionPlugin(Protocol):
    """One link of the admission chain. It may change the new object in place (defaults),
    refuse it by raising an `APIError` (a 422 Invalid, usually), and returns warnings for the
    client, which reach it as `Warning` headers (kubectl prints them). Plugins run in order;
    `/status` writes do not go through them."""

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> Sequence[str]:
        """Admit a new object; its metadata is already the server's."""
        ...

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> Sequence[str]:
        """Admit `new` in place of the stored `old`."""
        ...


class KindCodec(Protocol):
    """How the server reads and checks the kinds it has Go types for (`kinds.BuiltinKinds`):
    `decode` before admission, `validate` after it, as kube-apiserver's decoder and its
    registry strategies do."""

    def decode(
        self, resource: ResourceDef, version: str, obj: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """The object as decoded, and the paths of the unknown fields it dropped (an
        `APIError` when it cannot be decoded at all)."""
        ...

    def validate(
        self, resource: ResourceDef, obj: dict[str, Any], *, subresource: str = ""
    ) -> list[Cause]:
        """The causes of a 422 Invalid; empty when the object may be stored."""
        ...


@dataclass
class Result:
    object: dict[str, Any]
    warnings: list[str]
    created: bool = False


class Objects:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        admission: Sequence[AdmissionPlugin] = (),
        kinds: KindCodec | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.admission = tuple(admission)
        self.kinds = kinds

    # --- reads -------------------------------------------------------------------------------

    def get(self, t: Target) -> dict[str, Any]:
        obj = self.store.get(t.resource.key, t.namespace, t.name)
        if obj is None:
            raise errors.not_found(t.resource.group, t.resource.plural, t.name)
        return self.present(t, obj)

    def present(self, t: Target, obj: dict[str, Any]) -> dict[str, Any]:
        """The stored object as the requested version (all versions share one schema here)
        of the requested API (another shape for a view: `views`)."""
        obj = views.to_view(t.resource, obj)
        obj["apiVersion"] = t.resource.api_version(t.version)
        obj["kind"] = t.resource.kind
        return obj

    # --- create ------------------------------------------------------------------------------

    def create(
        self,
        t: Target,
        body: Any,
        *,
        validation: FieldValidation,
        dry_run: bool,
        manager: str = "",
        applied: bool = False,
    ) -> Result:
        """Create from `body`; `manager` is recorded as the writer in managedFields, unless
        `applied`: the body comes from a server-side apply that already set them."""
        obj, warnings = self._decode(t, self._check_body(t, body), validation)
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise errors.bad_request("metadata must be an object")
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = meta.generate_name(str(metadata["generateName"]))
        name = metadata.get("name")
        causes = meta.name_causes(
            name,
            label=t.resource.plural == "namespaces",
            path_segment=t.resource.path_segment_names,
        )
        if causes:
            raise errors.invalid(t.resource.group, t.resource.kind, str(name or ""), causes)
        assert isinstance(name, str)
        self._check_namespace(t, metadata)
        for field in (*meta.SERVER_FIELDS, "deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(field, None)
        metadata["uid"] = meta.new_uid()
        metadata["creationTimestamp"] = meta.now()
        if t.resource.tracks_generation:
            metadata["generation"] = 1
        if t.resource.namespaced:
            metadata["namespace"] = t.namespace
        version = t.resource.version(t.version)
        if version is not None and "status" in version.subresources and t.resource.crd_name:
            obj.pop("status", None)  # a CR's status is written only through /status
        warnings += [w for plugin in self.admission for w in plugin.on_create(t.resource, obj)]
        warnings += self._apply_schema(t, obj, validation)
        if not applied:
            apply.for_target(t.resource, t.version, t.subresource).track_update(None, obj, manager)
        self._validate_meta(t, obj)
        self._validate_kind(t, obj)
        obj = views.to_storage(t.resource, obj)
        if dry_run:
            return Result(self.present(t, obj), warnings, created=True)
        try:
            stored = self.store.create(t.resource.key, t.namespace, name, obj)
        except AlreadyExists:
            raise errors.already_exists(t.resource.group, t.resource.plural, name) from None
        return Result(self.present(t, stored), warnings, created=True)

    # --- update and patch --------------------------------------------------------------------

    def update(
        self,
        t: Target,
        body: Any,
        *,
        validation: FieldValidation,
        dry_run: bool,
        manager: str = "",
    ) -> Result:
        obj = self._check_body(t, body)
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            raise errors.bad_request("metadata must be an object")
        if metadata.get("name") not in (None, t.name):
            raise errors.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on "
                f"the URL ({t.name})"
            )
        return self._replace(t, obj, validation=validation, dry_run=dry_run, manager=manager)

    def patch(
        self,
        t: Target,
        raw: bytes,
        content_type: str,
        *,
        validation: FieldValidation,
        dry_run: bool,
        manager: str = "",
        force: bool = False,
    ) -> Result:
        if content_type == apply.APPLY_PATCH:
            return self._apply(
                t, raw, manager=manager, force=force, validation=validation, dry_run=dry_run
            )
        current = self._stored(t)
        if current is None:
            raise errors.not_found(t.resource.group, t.resource.plural, t.name)
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
        try:
            if content_type == "application/json-patch+json":
                patched = patches.json_patch(current, document)
            elif content_type == "application/merge-patch+json":
                patched = patches.merge_patch(current, document)
            elif content_type == "application/strategic-merge-patch+json":
                if t.resource.crd_name is not None:
                    raise APIError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources: use "
                        "--type=merge or --type=json",
                    )
                if not isinstance(document, dict):
                    raise errors.bad_request("a strategic merge patch must be a JSON object")
                patched = patches.strategic_merge_patch(current, document, t.resource.kind)
            else:
                raise errors.unsupported_media_type(content_type)
        except patches.PatchError as exc:
            raise APIError(422, "Invalid", str(exc)) from None
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        # A patch that names a resourceVersion is a precondition; one that does not is not.
        patched_meta = patched.setdefault("metadata", {})
        if isinstance(document, dict) and "resourceVersion" not in (document.get("metadata") or {}):
            patched_meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._replace(
            t, patched, validation=validation, dry_run=dry_run, current=current, manager=manager
        )

    def _apply(
        self,
        t: Target,
        raw: bytes,
        *,
        manager: str,
        force: bool,
        validation: FieldValidation,
        dry_run: bool,
    ) -> Result:
        """Server-side apply: merge the configuration into the object, or create it."""
        try:
            # read as kube's YAML library reads it (timestamps stay strings), within the bounds
            # decoding.patch has already checked this body against
            config = documents.load_yaml(raw)
        except documents.DocumentError as exc:
            raise errors.bad_request(f"error decoding YAML: {exc}") from None
        if not isinstance(config, dict):
            raise errors.bad_request("error decoding YAML: the apply patch must be an object")
        metadata = config.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if name not in (None, "", t.name):
            raise errors.bad_request(
                f"the name of the object ({name}) does not match the name on the URL ({t.name})"
            )
        fields = apply.for_target(t.resource, t.version, t.subresource)
        current = self._stored(t)
        if current is None:
            if t.subresource:
                raise errors.not_found(t.resource.group, t.resource.plural, t.name)
            merged = fields.apply(None, config, manager, force=force)
            merged.setdefault("metadata", {})["name"] = t.name
            return self.create(t, merged, validation=validation, dry_run=dry_run, applied=True)
        merged = fields.apply(current, config, manager, force=force)
        return self._replace(
            t, merged, validation=validation, dry_run=dry_run, current=current, applied=True
        )

    def _replace(
        self,
        t: Target,
        obj: dict[str, Any],
        *,
        validation: FieldValidation,
        dry_run: bool,
        current: dict[str, Any] | None = None,
        manager: str = "",
        applied: bool = False,
    ) -> Result:
        old = current or self._stored(t)
        if old is None:
            raise errors.not_found(t.resource.group, t.resource.plural, t.name)
        metadata = obj.setdefault("metadata", {})
        expected = metadata.get("resourceVersion")
        if expected not in (None, "") and str(expected) != old["metadata"]["resourceVersion"]:
            raise errors.conflict(t.resource.group, t.resource.plural, t.name, MODIFIED_MESSAGE)
        managed = metadata.get("managedFields")
        new, warnings = self._decode(t, self._merge(t, old, obj), validation)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if applied and t.subresource == "status":  # _merge took the status, and the managers
            new["metadata"].pop("managedFields", None)
            if managed is not None:
                new["metadata"]["managedFields"] = managed
        if t.subresource != "status":
            for plugin in self.admission:
                warnings += plugin.on_update(t.resource, old, new)
        warnings += self._apply_schema(t, new, validation)
        if not applied:
            apply.for_target(t.resource, t.version, t.subresource).track_update(old, new, manager)
        self._validate_meta(t, new)
        self._validate_kind(t, new)
        new = views.to_storage(t.resource, new)
        if dry_run:
            return Result(self.present(t, new), warnings)
        if new["metadata"].get("deletionTimestamp") and _unheld(t, new):
            # the last finalizer is gone: the deletion that waited for it happens now
            return Result(self.present(t, self.remove(t, old)), warnings)
        with _store_errors(t):
            stored = self.store.update(t.resource.key, t.namespace, t.name, new, expected=_rv(old))
        return Result(self.present(t, stored), warnings)

    def _stored(self, t: Target) -> dict[str, Any] | None:
        """The stored object in the shape of the requested API, for a change made through it."""
        obj = self.store.get(t.resource.key, t.namespace, t.name)
        return None if obj is None else views.to_view(t.resource, obj)

    def remove(self, t: Target, current: dict[str, Any]) -> dict[str, Any]:
        """Remove the object for good, if it is still the version the caller looked at."""
        with _store_errors(t):
            return self.store.delete(t.resource.key, t.namespace, t.name, expected=_rv(current))

    def _merge(self, t: Target, old: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        """/status takes only the status; the main resource everything but status (when a
        status subresource exists) and the server-owned metadata."""
        if t.subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = obj.get("status")
            if new["status"] is None:
                new.pop("status")
            return new
        version = t.resource.version(t.version)
        if version is not None and "status" in version.subresources:
            if "status" in old:
                obj["status"] = old["status"]
            else:
                obj.pop("status", None)
        obj["metadata"] = self._carry_metadata(old["metadata"], obj["metadata"])
        if namespaces.is_namespaces(t.resource):
            namespaces.prepare_update(t.subresource, old, obj)
        if not t.resource.tracks_generation:
            obj["metadata"].pop("generation", None)  # one an older kvd stored, say
        elif _spec_changed(old, obj):
            obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return obj

    @staticmethod
    def _carry_metadata(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Server-owned metadata is kept from the stored object whatever the client sent."""
        out = dict(new)
        for field in (
            "uid",
            "creationTimestamp",
            "generation",
            "name",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if field in old:
                out[field] = old[field]
            else:
                out.pop(field, None)
        if old.get("deletionTimestamp"):
            # finalizers may only be removed once deletion started, never added
            out["finalizers"] = [
                f for f in out.get("finalizers") or [] if f in (old.get("finalizers") or [])
            ]
        return out

    # --- shared checks -----------------------------------------------------------------------

    def _check_body(self, t: Target, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON or YAML object")
        expected = t.resource.api_version(t.version)
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version not in (None, "") and api_version != expected:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({expected})"
            )
        if kind not in (None, "") and kind != t.resource.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind "
                f"({t.resource.kind})"
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = expected, t.resource.kind
        return obj

    def _check_namespace(self, t: Target, metadata: dict[str, Any]) -> None:
        if not t.resource.namespaced:
            metadata.pop("namespace", None)
            return
        given = metadata.get("namespace")
        if given not in (None, "") and given != t.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        ns = self.store.get(self.registry.get("", "namespaces").key, "", t.namespace)  # type: ignore[union-attr]
        if ns is None:
            raise errors.not_found("", "namespaces", t.namespace)
        if ns["metadata"].get("deletionTimestamp"):
            r, name = t.resource, str(metadata.get("name") or "")
            resource = f"{r.plural}.{r.group}" if r.group else r.plural
            raise APIError(
                403,
                "Forbidden",
                f'{resource} "{name}" is forbidden: unable to create new content in namespace '
                f"{t.namespace} because it is being terminated",
                name=name,
                group=r.group,
                kind=r.plural,
                causes=[
                    Cause(
                        "NamespaceTerminating",
                        f"namespace {t.namespace} is being terminated",
                        "metadata.namespace",
                    )
                ],
            )

    def _decode(
        self, t: Target, obj: dict[str, Any], validation: FieldValidation
    ) -> tuple[dict[str, Any], list[str]]:
        """The body as the kind's decoder reads it; unknown fields refused under Strict,
        returned as warnings under Warn, dropped quietly under Ignore."""
        if self.kinds is None:
            return obj, []
        decoded, unknown = self.kinds.decode(t.resource, t.version, obj)
        warnings = [f'unknown field "{path}"' for path in unknown]
        if warnings and validation == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(warnings))
        return decoded, warnings if validation == "Warn" else []

    def _validate_kind(self, t: Target, obj: dict[str, Any]) -> None:
        if self.kinds is None:
            return
        causes = self.kinds.validate(t.resource, obj, subresource=t.subresource)
        if causes:
            raise errors.invalid(
                t.resource.group, t.resource.kind, obj["metadata"].get("name", ""), causes
            )

    def _validate_meta(self, t: Target, obj: dict[str, Any]) -> None:
        causes = meta.map_causes(obj["metadata"])
        causes += apply.validation_causes(obj["metadata"].get("managedFields"))
        if causes:
            raise errors.invalid(
                t.resource.group, t.resource.kind, obj["metadata"].get("name", ""), causes
            )

    def _apply_schema(
        self, t: Target, obj: dict[str, Any], validation: FieldValidation
    ) -> list[str]:
        version = t.resource.version(t.version)
        if version is None or version.schema is None:
            return []
        defaulted = schema.apply_defaults(obj, version.schema)
        pruned, unknown = schema.prune(defaulted, version.schema)
        warnings = [f'unknown field "{p.lstrip(".")}"' for p in unknown]
        if unknown and validation == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(warnings))
        obj.clear()
        obj.update(pruned)
        causes = [Cause(c.reason, c.message, c.field) for c in schema.validate(obj, version.schema)]
        if causes:
            raise errors.invalid(
                t.resource.group, t.resource.kind, obj["metadata"].get("name", ""), causes
            )
        if version.deprecation_warning:
            warnings.append(version.deprecation_warning)
        return warnings if validation != "Ignore" else [w for w in warnings if "unknown" not in w]


@contextlib.contextmanager
def _store_errors(t: Target) -> Iterator[None]:
    """A write that lost a race (409) or found its object gone (404), as the API says it."""
    try:
        yield
    except Conflict:
        raise errors.conflict(
            t.resource.group, t.resource.plural, t.name, MODIFIED_MESSAGE
        ) from None
    except NotFound:
        raise errors.not_found(t.resource.group, t.resource.plural, t.name) from None


def _unheld(t: Target, obj: dict[str, Any]) -> bool:
    """No finalizer holds the object any more (a namespace also has the spec's)."""
    if namespaces.is_namespaces(t.resource):
        return namespaces.removable(obj)
    return not obj["metadata"].get("finalizers")


def _rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Anything but metadata and status: what `generation` counts."""
    strip = ("metadata", "status", "apiVersion", "kind")
    return {k: v for k, v in old.items() if k not in strip} != {
        k: v for k, v in new.items() if k not in strip
    }
