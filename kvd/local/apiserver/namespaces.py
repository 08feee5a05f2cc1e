"""A Namespace's life as kube-apiserver's namespace strategy and REST storage shape it.

- Create: `status.phase` is `Active`, `spec.finalizers` holds `kubernetes` (the namespace
  controller's, removed once the namespace is empty), and the label
  `kubernetes.io/metadata.name` names it (kept on every update too, as kube's defaulting does).
- Update: `spec.finalizers` changes only through `/finalize`, the status only through
  `/status`.
- Delete (`deletion.Deleter`): the first DELETE only marks the namespace (deletionTimestamp,
  phase `Terminating`); the namespace controller (`namespace_controller`) empties it, then
  drops its finalizer. A namespace goes once both its `spec.finalizers` and
  `metadata.finalizers` are empty. `default`, `kube-system` and `kube-public` may not be deleted.

Pure rules on the stored dicts: `objects` and `deletion` call them, the controller uses them.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.registry import ResourceDef
from kvd.local.apiserver.store import ResourceKey

KEY = ResourceKey("", "namespaces")
FINALIZER = "kubernetes"
NAME_LABEL = "kubernetes.io/metadata.name"
ACTIVE, TERMINATING = "Active", "Terminating"
IMMORTAL = frozenset({"default", "kube-system", "kube-public"})


def is_namespaces(resource: ResourceDef) -> bool:
    return resource.key == KEY


def spec_finalizers(obj: dict[str, Any]) -> list[str]:
    return [str(f) for f in (obj.get("spec") or {}).get("finalizers") or []]


def removable(obj: dict[str, Any]) -> bool:
    """A namespace being deleted goes once no finalizer of either kind holds it."""
    return not obj["metadata"].get("finalizers") and not spec_finalizers(obj)


def prepare_update(subresource: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """What an update may change: the main resource never the spec's finalizers (the
    status is already kept by the status subresource's rules), /finalize only them."""
    if subresource == "":
        finalizers = spec_finalizers(old)
        spec = new.setdefault("spec", {})
        if not isinstance(spec, dict):
            return  # validation refuses it
        if finalizers:
            spec["finalizers"] = finalizers
        else:
            spec.pop("finalizers", None)


class NamespaceStrategy:
    """The create and update defaults of namespaces; other kinds pass untouched. A link of the
    admission chain the server gives `objects.Objects`."""

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> list[str]:
        if not is_namespaces(resource):
            return []
        _label(obj)
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            finalizers = spec_finalizers(obj)
            if FINALIZER not in finalizers:
                spec["finalizers"] = [*finalizers, FINALIZER]
        obj["status"] = {"phase": ACTIVE}
        return []

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> list[str]:
        if is_namespaces(resource):
            _label(new)
        return []


def _label(obj: dict[str, Any]) -> None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return
    labels = metadata.get("labels")
    if not isinstance(labels, dict):
        labels = metadata["labels"] = {}
    labels[NAME_LABEL] = metadata["name"]
