"""Kubernetes' strategic merge patch (``application/strategic-merge-patch+json``).

``kubectl apply`` and ``kubectl patch`` send it for built-in kinds. Lists of objects merge by a
per-field key (containers by ``name``) instead of being replaced; kube-apiserver reads those keys
from Go struct tags, which a dict-based server does not have, so ``_KINDS`` below encodes them for
the kinds this server serves, checked field by field against ``kubectl patch --local`` (which runs
apimachinery's own code on the same types). The merge reproduces apimachinery's ordering quirks
where kubectl users could see them, rather than fixing them.

A result is what kube-apiserver stores once it decodes apimachinery's raw result into the typed
object: no ``null`` inside objects and no ``$`` directive keys left over. Inputs are never changed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from kvd.local.apiserver.patches.jsonpatch import PatchError, brief, json_equal, json_type


class UnsupportedPatchTypeError(PatchError):
    """Strategic merge patch sent for a kind without patch metadata (custom resources).

    kube-apiserver does not try the patch: it refuses the content type with
    ``415 UnsupportedMediaType`` and ``KUBE_MESSAGE`` (listing apply-patch only where server-side
    apply is served). The caller maps this error to that status.
    """

    STATUS_CODE: Final = 415
    REASON: Final = "UnsupportedMediaType"
    KUBE_MESSAGE: Final = (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


# --- strategic merge patch: the patch metadata of the kinds served ----------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _ListRule:
    """A list with ``patchStrategy: merge``; ``merge_key`` None for a set of primitives."""

    merge_key: str | None


_Rules = Mapping[tuple[str, ...], _ListRule]


def _rules(prefix: tuple[str, ...], **fields: str | None) -> dict[tuple[str, ...], _ListRule]:
    return {(*prefix, name): _ListRule(key) for name, key in fields.items()}


_METADATA: Final = _rules(("metadata",), ownerReferences="uid", finalizers=None)


def _pod_spec(at: tuple[str, ...]) -> dict[tuple[str, ...], _ListRule]:
    # Lists absent here (tolerations, readinessGates, envFrom, command, ...) have no patch
    # strategy in k8s.io/api and are replaced whole, as kube-apiserver does.
    rules = _rules(
        at,
        containers="name",
        initContainers="name",
        ephemeralContainers="name",
        volumes="name",
        imagePullSecrets="name",
        hostAliases="ip",
        topologySpreadConstraints="topologyKey",
        resourceClaims="name",
        schedulingGates="name",
    )
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        rules |= _rules(
            (*at, containers),
            env="name",
            ports="containerPort",
            volumeMounts="mountPath",
            volumeDevices="devicePath",
        )
    return rules


_STATUS_CONDITIONS: Final = _rules(("status",), conditions="type")

# kind -> (API groups, list rules besides metadata), for the built-in kinds served. Each rule was
# checked against `kubectl patch --local` on that kind (see tests/local/apiserver/test_patch.py).
# containerStatuses have no merge key in k8s.io/api (the kubelet sends them whole), so they are
# replaced, not merged by name; CRD status conditions likewise have no patch strategy.
_CORE: Final = frozenset({""})
_KINDS: Final[dict[str, tuple[frozenset[str], _Rules]]] = {
    "Pod": (
        _CORE,
        _pod_spec(("spec",))
        | _STATUS_CONDITIONS
        | _rules(("status",), podIPs="ip", hostIPs="ip", resourceClaimStatuses="name"),
    ),
    "Node": (
        _CORE,
        _rules(("spec",), podCIDRs=None) | _rules(("status",), conditions="type", addresses="type"),
    ),
    "Service": (_CORE, _rules(("spec",), ports="port") | _STATUS_CONDITIONS),
    "Namespace": (_CORE, _STATUS_CONDITIONS),
    "PersistentVolumeClaim": (_CORE, _STATUS_CONDITIONS),
    "PersistentVolume": (_CORE, {}),
    "ServiceAccount": (_CORE, _rules((), secrets="name")),
    "ConfigMap": (_CORE, {}),
    "Secret": (_CORE, {}),
    "Endpoints": (_CORE, {}),
    "Event": (frozenset({"", "events.k8s.io"}), {}),
    "Lease": (frozenset({"coordination.k8s.io"}), {}),
    "StorageClass": (frozenset({"storage.k8s.io"}), {}),
    "CustomResourceDefinition": (frozenset({"apiextensions.k8s.io"}), {}),
    # apps workloads: their pod template merges as a pod's spec does
    **{
        kind: (frozenset({"apps"}), _pod_spec(("spec", "template", "spec")) | _STATUS_CONDITIONS)
        for kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")
    },
    "ControllerRevision": (frozenset({"apps"}), {}),
    "PodDisruptionBudget": (frozenset({"policy"}), _STATUS_CONDITIONS),
    # endpoints and ports carry no patch strategy (atomic lists)
    "EndpointSlice": (frozenset({"discovery.k8s.io"}), {}),
    # rules and subjects carry no patch strategy: a patch replaces them whole
    **{
        kind: (frozenset({"rbac.authorization.k8s.io"}), {})
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}


def supports_strategic_merge(kind: str, *, group: str | None = None) -> bool:
    """Whether ``kind`` (in ``group``, when given) has patch metadata here.

    Lets the caller refuse ``application/strategic-merge-patch+json`` before reading the body, as
    kube-apiserver does for custom resources.
    """
    entry = _KINDS.get(kind)
    return entry is not None and (group is None or group in entry[0])


def merge_keys(kind: str, *, group: str | None = None) -> dict[tuple[str, ...], str | None]:
    """The lists of a built-in ``kind`` that merge rather than replace: path (field names, list
    items transparent) -> merge key, None for a set of primitives. Empty for kinds without
    patch metadata. Server-side apply starts from the same knowledge (``apply.shapes``)."""
    if not supports_strategic_merge(kind, group=group):
        return {}
    return {path: rule.merge_key for path, rule in {**_METADATA, **_KINDS[kind][1]}.items()}


# --- strategic merge patch: the merge ----------------------------------------------------------

_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_FROM: Final = "$deleteFromPrimitiveList/"
_DROP: Final = object()  # a new value apimachinery leaves out entirely


class _Merger:
    def __init__(self, rules: _Rules) -> None:
        self._rules = rules

    def map(self, original: dict[str, Any], patch: dict[str, Any], at: tuple[str, ...]) -> Any:
        """Merge ``patch`` into ``original`` (a private copy, changed in place)."""
        if _DIRECTIVE in patch:
            directive = patch[_DIRECTIVE]
            if directive == "replace":
                return _stored(patch)
            if directive == "delete":
                return {}
            raise PatchError(f"{_where(at)}: unknown patch type {json.dumps(directive)} in a map")
        if _RETAIN_KEYS in patch:
            keep = patch[_RETAIN_KEYS]
            if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
                raise PatchError(f"{_where(at)}: $retainKeys must be a list of field names")
            for key, value in patch.items():
                if value is not None and key not in keep and not key.startswith("$"):
                    raise PatchError(f"{_where(at)}: $retainKeys must list {key!r}, which is set")
            original = {k: v for k, v in original.items() if k in keep}
        done = self._set_element_orders(original, patch, at)
        for key, value in patch.items():
            if key in done or key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith(_SET_ORDER):
                continue
            if key.startswith(_DELETE_FROM):
                field = key[len(_DELETE_FROM) :]
                present = original.get(field)
                if isinstance(present, list) and isinstance(value, list):
                    original[field] = [x for x in present if not _contains(value, x)]
            else:
                self._field(original, key, value, (*at, key))
        return original

    def _field(self, original: dict[str, Any], key: str, value: Any, at: tuple[str, ...]) -> None:
        have = original.get(key)
        if value is None:
            original.pop(key, None)
        elif isinstance(have, dict) and isinstance(value, dict):
            original[key] = self.map(have, value, at)
        elif isinstance(have, list) and isinstance(value, list):
            original[key] = self.list(have, value, at)
        elif (fresh := _added(value)) is _DROP:
            original.pop(key, None)
        else:
            original[key] = fresh

    def list(self, original: list[Any], patch: list[Any], at: tuple[str, ...]) -> list[Any]:
        """Merge list ``patch`` into ``original`` as the field's rule says, or replace it."""
        rule = self._rules.get(at)
        if rule is None:  # no patch strategy: the patch replaces the list
            return [_stored(x) for x in patch]
        if not _element_kind(original, patch, at):  # a set of primitives
            return _order(_dedup([*original, *patch]), patch, original, None)
        if rule.merge_key is None:
            raise PatchError(f"{_where(at)}: cannot merge lists without merge key")
        key = rule.merge_key
        original, items, replace = _special_items(original, patch, key, at)
        if replace:
            original, items = [_stored(x) for x in items], []
        merged = list(original)
        for item in items:
            found = next((i for i, o in enumerate(merged) if _key_equal(o, item, key)), None)
            if found is None:
                merged.append(_stored(item))
            else:
                merged[found] = self.map(merged[found], item, at)
        return _order(merged, items, original, key)

    def _set_element_orders(
        self, original: dict[str, Any], patch: dict[str, Any], at: tuple[str, ...]
    ) -> set[str]:
        """Apply ``$setElementOrder/<field>``: the merged list in the order kubectl asked for."""
        done: set[str] = set()
        for directive, order in patch.items():
            if not directive.startswith(_SET_ORDER):
                continue
            field, where = directive[len(_SET_ORDER) :], (*at, directive[len(_SET_ORDER) :])
            if not isinstance(order, list):
                raise PatchError(f"{_where(where)}: {directive} must be a list")
            have, change = original.get(field), patch.get(field)
            if (have is not None and not isinstance(have, list)) or (
                change is not None and not isinstance(change, list)
            ):
                raise PatchError(f"{_where(where)}: {directive} names a field that is not a list")
            rule = self._rules.get(where)
            if rule is None or (have is None and change is None):
                continue  # a replaced list keeps the patch's own order
            key = (
                rule.merge_key
                if _element_kind(have or [], [*(change or []), *order], where)
                else None
            )
            if key is not None:
                for item in order:
                    if not isinstance(item, dict) or key not in item:
                        raise PatchError(f"{_where(where)}: {brief(item)} lacks merge key {key!r}")
            _check_order(change or [], order, key, where)
            if not have and not change:
                raise PatchError(f"{_where(where)}: no elements in any of the given slices")
            if change is None:
                merged = list(have or [])
            elif have is None:
                merged = _added(change)
                done.add(field)
            else:
                merged = self.list(have, change, where)
                done.add(field)
            server = _live_order(have or [], change or [], key) if key else have or []
            original[field] = _order(merged, order, server, key)
        return done


def _stored(value: Any) -> Any:
    """A patch value kept as sent, as the typed object decodes it: objects lose their nulls and
    their ``$`` directive keys (apimachinery stores list items it appends, or takes whole from a
    ``$patch: replace`` list, without looking inside them)."""
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items() if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def _added(value: Any) -> Any:
    """A patch value for a key the target lacks: apimachinery drops nulls and every object that
    carries ``$patch`` (``removeDirectives``), then decoding drops the other ``$`` keys."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return _DROP
        kept = {k: _added(v) for k, v in value.items() if v is not None and not k.startswith("$")}
        return {k: v for k, v in kept.items() if v is not _DROP}
    if isinstance(value, list):
        return [y for x in value if (y := _added(x)) is not _DROP]
    return value


def _special_items(
    original: list[Any], patch: list[Any], key: str, at: tuple[str, ...]
) -> tuple[list[Any], list[Any], bool]:
    """Apply list items carrying ``$patch``: ``delete`` drops the target's items with that merge
    key, ``replace`` makes the other items the whole list. Returns the target left, the plain
    items, and whether to replace."""
    items, replace = [], False
    for item in patch:
        if _DIRECTIVE not in item:
            if key not in item:
                raise PatchError(f"{_where(at)}: {brief(item)} lacks merge key {key!r}")
            items.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise PatchError(f"{_where(at)}: {brief(item)} lacks merge key {key!r}")
            original = [o for o in original if not _key_equal(o, item, key)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError(f"{_where(at)}: merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"{_where(at)}: unknown patch type {json.dumps(directive)}")
    return original, items, replace


def _live_order(have: list[Any], change: list[Any], key: str) -> list[Any]:
    """The live order ``$setElementOrder`` interleaves server-only items by, as apimachinery has it.

    apimachinery deletes ``$patch: delete`` items by shifting the live list left in place and then
    appends new items into the freed tail, so the live order it consults afterwards holds those new
    items where deleted ones were. kubectl's results depend on this; it is reproduced, not fixed.
    """
    view, size = list(have), len(have)
    replace = False
    for item in change:
        directive = item.get(_DIRECTIVE) if isinstance(item, dict) else None
        if directive == "replace":
            replace = True
        elif directive == "delete":
            while (i := _position(view[:size], item, key)) >= 0:
                view[i : size - 1], size = view[i + 1 : size], size - 1
    if replace:
        return view
    for item in change:
        if (
            isinstance(item, dict)
            and _DIRECTIVE not in item
            and _position(view[:size], item, key) < 0
        ):
            if size == len(view):
                break  # Go reallocates here: later appends no longer touch the live slice
            view[size], size = item, size + 1
    return view


def _where(at: tuple[str, ...]) -> str:
    return ".".join(at) or "the object"


def _element_kind(original: list[Any], patch: list[Any], at: tuple[str, ...]) -> bool:
    """True when the elements are objects, False when primitives: as apimachinery, a merged list
    holds one JSON type only, and never lists."""
    kinds = {json_type(x) for x in (*original, *patch)}
    if "list" in kinds:
        raise PatchError(f"{_where(at)}: lists of lists are not supported")
    if len(kinds) > 1:
        raise PatchError(f"{_where(at)}: list element types are not identical: {sorted(kinds)}")
    return kinds == {"object"}


def _key_equal(a: Any, b: Any, key: str) -> bool:
    return isinstance(a, dict) and isinstance(b, dict) and key in a and json_equal(a[key], b[key])


def _contains(items: Iterable[Any], value: Any) -> bool:
    return any(json_equal(x, value) for x in items)


def _dedup(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not _contains(out, item):
            out.append(item)
    return out


def _position(items: list[Any], item: Any, key: str | None) -> int:
    for i, candidate in enumerate(items):
        if (key is None and json_equal(candidate, item)) or (
            key is not None and isinstance(candidate, dict) and _key_equal(item, candidate, key)
        ):
            return i
    return -1


def _order(merged: list[Any], wanted: list[Any], server: list[Any], key: str | None) -> list[Any]:
    """apimachinery's ``normalizeElementOrder``: items the patch names come in the patch's order,
    the server's other items keep theirs, and the two interleave by the server's order; an item
    new to the server goes before the server items that follow it."""

    def rank(order: list[Any]) -> Callable[[Any], int]:
        def position(item: Any) -> int:
            found = _position(order, item, key)
            return found if found >= 0 else len(order)

        return position

    named = sorted((m for m in merged if _position(wanted, m, key) >= 0), key=rank(wanted))
    others = sorted((m for m in merged if _position(wanted, m, key) < 0), key=rank(server))
    out: list[Any] = []
    while named and others:
        left, right = _position(server, others[0], key), _position(server, named[0], key)
        out.append(others.pop(0) if 0 <= left < right else named.pop(0))
    return out + others + named


def _check_order(change: list[Any], order: list[Any], key: str | None, at: tuple[str, ...]) -> None:
    """The patch's own items must appear in ``$setElementOrder`` and in the same order.

    apimachinery's walk stops once the order list is used up, so any item left over, even a
    ``$patch: replace`` marker, fails it; the same walk is kept here.
    """
    if not order or not change:
        return
    if key is not None:
        change = [x for x in change if not (isinstance(x, dict) and x.get(_DIRECTIVE) == "delete")]
    item = step = 0
    while item < len(change) and step < len(order):
        if isinstance(change[item], dict) and _DIRECTIVE in change[item]:
            item += 1
            continue
        if _position([order[step]], change[item], key) == 0:
            item += 1
        step += 1
    if item < len(change):
        raise PatchError(f"{_where(at)}: the patch list does not follow its $setElementOrder")


def strategic_merge_patch(
    target: dict[str, Any], patch: dict[str, Any], kind: str, *, group: str | None = None
) -> dict[str, Any]:
    """Apply a strategic merge patch to an object of a built-in ``kind``.

    Maps merge; ``null`` deletes a key; lists merge only where the kind's metadata says so (by merge
    key for objects, as a set for primitives) and are replaced otherwise; the directives are
    ``$patch: replace|delete`` (on maps and list items), ``$retainKeys``,
    ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>``.

    apimachinery's quirks are kept where kubectl users could see them: a new item without
    ``$setElementOrder`` goes before the target's items, server-only items are placed by a live
    list that deletions have shifted, and values new to the target are stored as apimachinery
    leaves them. Two differences: merge keys compare as JSON (``80`` equals ``80.0``; Go tells
    int64 from float64), and a patch that both merges into and deletes from one primitive list
    applies its keys in order (apimachinery's order is random there; kubectl never sends both for
    one item).

    Raises ``UnsupportedPatchTypeError`` for kinds without metadata (custom resources).
    """
    if not supports_strategic_merge(kind, group=group):
        raise UnsupportedPatchTypeError(
            "strategic merge patch is not supported for custom resources; use --type merge or json"
        )
    if not isinstance(target, dict) or not isinstance(patch, dict):
        raise PatchError("a strategic merge patch and its target must both be JSON objects")
    rules = {**_METADATA, **_KINDS[kind][1]}
    result = _Merger(rules).map(copy.deepcopy(target), copy.deepcopy(patch), ())
    if not isinstance(result, dict):  # pragma: no cover - map() always returns a dict
        raise PatchError("a strategic merge patch must produce an object")
    return result
