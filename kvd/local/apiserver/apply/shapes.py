"""What server-side apply needs to know about a kind: the shape of each field.

structured-merge-diff walks objects with a schema that says, for every node, whether it is a
struct (its keys are named fields), a map (its keys are data), a list and how its items are
identified (`atomic`: the list is one value; `set`: items are their own identity; `map`: items
are identified by the values of their key fields), or atomic (replaced whole, owned as one
field). A `Shape` answers those questions for one node and hands out its children's shapes.

Where the shapes come from:

* custom resources: their CRD version's structural schema (`properties` are named fields,
  `additionalProperties` map values, `x-kubernetes-list-type` / `-list-map-keys` /
  `-map-type`; an array without a list type is atomic, as in kube), with `metadata` as
  ObjectMeta; `x-kubernetes-preserve-unknown-fields` without properties is *deduced*: maps are
  maps, lists atomic;
* built-in kinds: the list keys of the strategic merge patch (`patches.merge_keys`, from
  k8s.io/api's struct tags), corrected where k8s.io/api's `+listMapKey` markers name more keys
  than the patch merge key (container ports by port and protocol, ...), plus the
  `+structType=atomic` / `+mapType=atomic` types kvd's users touch. Every other object is a
  struct and every other list atomic, which is what kube's schemas say for lists without a
  patch strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from kvd.local.apiserver import patches

ListType = Literal["atomic", "set", "map"]


class Shape:
    """The shape of one node. A node's value decides which half applies: for an object,
    `atomic` and `field()`; for a list, `list_type`, `keys` and `item()`."""

    __slots__ = ("atomic", "key_defaults", "keys", "list_type")

    def __init__(
        self,
        *,
        atomic: bool = False,
        list_type: ListType = "atomic",
        keys: tuple[str, ...] = (),
        key_defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.atomic = atomic
        self.list_type: ListType = list_type
        self.keys = keys
        self.key_defaults: Mapping[str, Any] = key_defaults or {}

    def field(self, name: str) -> tuple[Shape, bool]:
        """The shape of key `name` of an object, and whether the key is a named field (a
        struct's) rather than a map's key: structured-merge-diff counts a map key as owned in
        itself, a struct field only through what is below it."""
        raise NotImplementedError

    def item(self) -> Shape:
        """The shape of a list's items."""
        raise NotImplementedError


class _Deduced(Shape):
    """No schema: objects are maps of deduced values, lists atomic."""

    __slots__ = ()

    def field(self, name: str) -> tuple[Shape, bool]:
        return self, False

    def item(self) -> Shape:
        return self


DEDUCED: Final[Shape] = _Deduced()


class _Static(Shape):
    """A node of a built-in kind's tree: listed children, every other key a struct field."""

    __slots__ = ("children", "element", "named")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.children: dict[str, _Static] = {}
        self.element: _Static | None = None
        self.named = True

    def field(self, name: str) -> tuple[Shape, bool]:
        child = self.children.get(name)
        return (child, True) if child is not None else (_OPEN, True)

    def item(self) -> Shape:
        return self.element if self.element is not None else _OPEN

    def at(self, path: tuple[str, ...]) -> _Static:
        """The node at `path` (field names; list items are stepped through), made on demand."""
        node = self
        for name in path:
            if node.list_type != "atomic":
                if node.element is None:
                    node.element = _Static()
                node = node.element
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = _Static()
            node = child
        return node


_OPEN: Final[_Static] = _Static()  # any object or list of a built-in kind not listed below

# Lists whose k8s.io/api `+listMapKey`s are more than their patch merge key, and the keys'
# defaults (structured-merge-diff fills a missing key from the schema's default).
_TCP = {"protocol": "TCP"}
_MORE_KEYS: Final[dict[str, tuple[tuple[str, ...], Mapping[str, Any]]]] = {
    "ports@container": (("containerPort", "protocol"), _TCP),
    "ports@service": (("port", "protocol"), _TCP),
    "topologySpreadConstraints": (("topologyKey", "whenUnsatisfiable"), {}),
}
# `+structType=atomic` / `+mapType=atomic` fields of the kinds served, by kind ("" for all).
_POD_SPEC_ATOMIC = (
    *(
        (*containers, *selector)
        for containers in (
            ("spec", "containers"),
            ("spec", "initContainers"),
            ("spec", "ephemeralContainers"),
        )
        for selector in (
            ("env", "valueFrom", "configMapKeyRef"),
            ("env", "valueFrom", "secretKeyRef"),
            ("env", "valueFrom", "fieldRef"),
            ("env", "valueFrom", "resourceFieldRef"),
        )
    ),
    ("spec", "imagePullSecrets"),
    ("spec", "topologySpreadConstraints", "labelSelector"),
)
_ATOMIC: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "": (("metadata", "ownerReferences"),),
    "Pod": _POD_SPEC_ATOMIC,
    "Service": (("spec", "selector"),),
    "PersistentVolumeClaim": (("spec", "selector"), ("spec", "dataSource")),
    "PersistentVolume": (("spec", "claimRef"),),
    "Event": (("involvedObject",), ("related",)),
    "ServiceAccount": (("secrets",),),
}


def _builtin_tree(kind: str, group: str) -> _Static:
    root = _Static()
    rules = {
        ("metadata", "finalizers"): None,
        ("metadata", "ownerReferences"): "uid",
        **patches.merge_keys(kind, group=group),
    }
    for path, merge_key in sorted(rules.items(), key=lambda rule: len(rule[0])):
        node = root.at(path)
        if merge_key is None:
            node.list_type = "set"
            continue
        node.list_type, node.keys = "map", (merge_key,)
        owner = "service" if kind == "Service" else "container"
        more = _MORE_KEYS.get(path[-1]) or _MORE_KEYS.get(f"{path[-1]}@{owner}")
        if more is not None and merge_key in more[0]:
            node.keys, node.key_defaults = more
    for path in (*_ATOMIC[""], *_ATOMIC.get(kind, ())):
        node = root.at(path)
        if node.list_type == "atomic":
            node.atomic = True
        else:  # a keyed list of atomic items (owner references, local object references)
            if node.element is None:
                node.element = _Static()
            node.element.atomic = True
    return root


_BUILTINS: dict[tuple[str, str], Shape] = {}


def builtin(kind: str, group: str) -> Shape:
    """The shape of a built-in kind (cached: the tables do not change)."""
    shape = _BUILTINS.get((group, kind))
    if shape is None:
        shape = _BUILTINS[(group, kind)] = _builtin_tree(kind, group)
    return shape


# --- custom resources -------------------------------------------------------------------------


class _Schema(Shape):
    """A node of a CRD's structural schema; children are made once, when first asked for."""

    __slots__ = ("_children", "_element", "_schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or ()
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        defaults = {}
        for k in keys:
            prop = ((items or {}).get("properties") or {}).get(k)
            if isinstance(prop, dict) and "default" in prop:
                defaults[k] = prop["default"]
        super().__init__(
            atomic=schema.get("x-kubernetes-map-type") == "atomic",
            list_type=list_type if list_type in ("set", "map") else "atomic",
            keys=tuple(k for k in keys if isinstance(k, str)),
            key_defaults=defaults,
        )
        self._schema = schema
        self._children: dict[str, tuple[Shape, bool]] = {}
        self._element: Shape | None = None

    def field(self, name: str) -> tuple[Shape, bool]:
        found = self._children.get(name)
        if found is None:
            found = self._children[name] = self._field(name)
        return found

    def _field(self, name: str) -> tuple[Shape, bool]:
        properties = self._schema.get("properties")
        if isinstance(properties, dict) and isinstance(properties.get(name), dict):
            return _Schema(properties[name]), True
        additional = self._schema.get("additionalProperties")
        if isinstance(additional, dict):
            return _Schema(additional), False
        return DEDUCED, False

    def item(self) -> Shape:
        if self._element is None:
            items = self._schema.get("items")
            self._element = _Schema(items) if isinstance(items, dict) else DEDUCED
        return self._element


class _CustomResource(_Schema):
    """The root of a custom resource: its schema, with ObjectMeta's shape for `metadata`."""

    __slots__ = ()

    def _field(self, name: str) -> tuple[Shape, bool]:
        if name == "metadata":
            return builtin("CustomResource", "").field("metadata")
        return super()._field(name)


_SCHEMAS: dict[int, tuple[Mapping[str, Any], Shape]] = {}


def custom(schema: Mapping[str, Any] | None) -> Shape:
    """The shape of a custom resource whose version has `schema` (None: no schema, deduced).

    Cached by the schema object, which a served CRD version keeps until it changes."""
    if schema is None:
        return _CustomResource({"x-kubernetes-preserve-unknown-fields": True})
    cached = _SCHEMAS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    if len(_SCHEMAS) > 256:
        _SCHEMAS.clear()
    shape = _CustomResource(schema)
    _SCHEMAS[id(schema)] = (schema, shape)
    return shape
