"""The three PATCH bodies kube-apiserver accepts, applied to plain JSON values.

* ``merge_patch``: RFC 7386 JSON merge patch (``application/merge-patch+json``).
* ``json_patch``: RFC 6902 JSON patch (``application/json-patch+json``).
* ``strategic_merge_patch``: Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``), which ``kubectl apply`` and ``kubectl patch`` send
  for built-in kinds. Lists of objects merge by a per-field key (containers by ``name``) instead of
  being replaced; kube-apiserver reads those keys from Go struct tags, which a dict-based server
  does not have, so ``_KINDS`` below encodes them for the kinds this server serves, checked field by
  field against ``kubectl patch --local`` (which runs apimachinery's own code on the same types).

Every function returns a new value and leaves its inputs alone: the store hands out cached objects.
A strategic merge result is what kube-apiserver stores once it decodes apimachinery's raw result
into the typed object: no ``null`` inside objects and no ``$`` directive keys left over.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final


class PatchError(ValueError):
    """A patch that is malformed or does not apply; the message names the operation and path."""


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


# --- RFC 7386 ----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 ----------------------------------------------------------------------------------

_INDEX: Final = re.compile(r"0|[1-9][0-9]*")
_VALUE_OPS: Final = frozenset({"add", "replace", "test"})
_FROM_OPS: Final = frozenset({"move", "copy"})
MAX_JSON_PATCH_OPERATIONS: Final = 10_000  # kube-apiserver's limit, against patch-bomb requests


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (RFC 6902 ``test``): numbers by value, but ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


class _OpError(Exception):
    """A failure inside one operation, turned into a PatchError naming the operation."""


def _pointer(text: Any, member: str) -> list[str]:
    if not isinstance(text, str):
        raise _OpError(f'"{member}" must be a string JSON pointer')
    if not text:
        return []
    if not text.startswith("/"):
        raise _OpError(f'"{member}" {json.dumps(text)} must be empty or start with "/"')
    tokens = text.split("/")[1:]
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise _OpError(f'"{member}" {json.dumps(text)} has an escape other than ~0 or ~1')
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _show(tokens: list[str]) -> str:
    return json.dumps("".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens))


def _index(token: str, size: int, tokens: list[str]) -> int:
    # size is one past the last valid index (len + 1 where inserting at the end is allowed).
    if not _INDEX.fullmatch(token) or int(token) >= size:
        raise _OpError(f"{_show(tokens)}: {json.dumps(token)} is not an index in a list of {size}")
    return int(token)


def _get(doc: Any, tokens: list[str]) -> Any:
    for depth, token in enumerate(tokens):
        if isinstance(doc, dict):
            if token not in doc:
                raise _OpError(f"{_show(tokens[: depth + 1])} does not exist")
            doc = doc[token]
        elif isinstance(doc, list):
            if token == "-":
                raise _OpError(f"{_show(tokens[: depth + 1])}: '-' names no existing element")
            doc = doc[_index(token, len(doc), tokens[: depth + 1])]
        else:
            raise _OpError(f"{_show(tokens[:depth])} is {_a(doc)}, not an object or list")
    return doc


def _a(value: Any) -> str:
    kind = _json_type(value)
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, dict) else type(value).__name__


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _get(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        where = len(parent) if last == "-" else _index(last, len(parent) + 1, tokens)
        parent.insert(where, value)
    else:
        raise _OpError(f"{_show(tokens[:-1])} is {_a(parent)}, not an object or list")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise _OpError("the whole document cannot be removed")
    parent, last = _get(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _OpError(f"{_show(tokens)} does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        if last == "-":
            raise _OpError(f"{_show(tokens)}: '-' names no existing element")
        return doc, parent.pop(_index(last, len(parent), tokens))
    raise _OpError(f"{_show(tokens[:-1])} is {_a(parent)}, not an object or list")


def _checked(operation: Any) -> tuple[str, list[str]]:
    """The operation's ``op`` and parsed ``path``, once its members are known to be there."""
    if not isinstance(operation, dict):
        raise _OpError(f"an operation must be an object, not {_a(operation)}")
    op = operation.get("op")
    if not isinstance(op, str) or op not in _OPERATIONS:
        raise _OpError(f"unknown op {_brief(op)}" if "op" in operation else 'missing "op"')
    if "path" not in operation:
        raise _OpError('missing "path"')
    path = _pointer(operation["path"], "path")
    for member, ops in (("value", _VALUE_OPS), ("from", _FROM_OPS)):
        if op in ops and member not in operation:
            raise _OpError(f'missing "{member}"')
    return op, path


def _op_add(doc: Any, path: list[str], operation: dict[str, Any]) -> Any:
    return _add(doc, path, copy.deepcopy(operation["value"]))


def _op_remove(doc: Any, path: list[str], operation: dict[str, Any]) -> Any:
    return _remove(doc, path)[0]


def _op_replace(doc: Any, path: list[str], operation: dict[str, Any]) -> Any:
    _get(doc, path)  # unlike add, replace needs the target to exist
    value = copy.deepcopy(operation["value"])
    if not path:
        return value
    parent, last = _get(doc, path[:-1]), path[-1]
    parent[last if isinstance(parent, dict) else int(last)] = value
    return doc


def _op_test(doc: Any, path: list[str], operation: dict[str, Any]) -> Any:
    actual = _get(doc, path)
    if not json_equal(actual, operation["value"]):
        expected = _brief(operation["value"])
        raise _OpError(f"test failed: {_show(path)} is {_brief(actual)}, not {expected}")
    return doc


def _op_copy(doc: Any, path: list[str], operation: dict[str, Any]) -> Any:
    return _add(doc, path, copy.deepcopy(_get(doc, _pointer(operation["from"], "from"))))


def _op_move(doc: Any, path: list[str], operation: dict[str, Any]) -> Any:
    source = _pointer(operation["from"], "from")
    if path[: len(source)] == source and len(path) > len(source):
        raise _OpError(f"{_show(source)} cannot be moved into its own child")
    _get(doc, source)
    if path == source:
        return doc
    doc, value = _remove(doc, source)
    return _add(doc, path, value)


_OPERATIONS: Final[dict[str, Callable[[Any, list[str], dict[str, Any]], Any]]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "test": _op_test,
    "copy": _op_copy,
    "move": _op_move,
}


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _naming(operation: Any) -> str:
    # " (add "/a/b")", so an error reads with the operation it came from.
    if not isinstance(operation, dict):
        return ""
    op, path = operation.get("op"), operation.get("path")
    if not isinstance(op, str) or not isinstance(path, str):
        return ""
    return f" ({op} {json.dumps(path)})"


def json_patch(target: Any, ops: Any, *, max_operations: int = MAX_JSON_PATCH_OPERATIONS) -> Any:
    """Apply an RFC 6902 patch (add, remove, replace, move, copy, test), all or nothing."""
    if not isinstance(ops, list):
        raise PatchError(f"a JSON patch must be a list of operations, not {_a(ops)}")
    if len(ops) > max_operations:
        raise PatchError(
            f"the allowed number of operations in a JSON patch is {max_operations}, "
            f"the provided patch has {len(ops)} operations"
        )
    doc = copy.deepcopy(target)
    for number, operation in enumerate(ops):
        try:
            op, path = _checked(operation)
            doc = _OPERATIONS[op](doc, path, operation)
        except _OpError as err:
            raise PatchError(f"json patch operation {number}{_naming(operation)}: {err}") from None
    return doc


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
}


def supports_strategic_merge(kind: str, *, group: str | None = None) -> bool:
    """Whether ``kind`` (in ``group``, when given) has patch metadata here.

    Lets the caller refuse ``application/strategic-merge-patch+json`` before reading the body, as
    kube-apiserver does for custom resources.
    """
    entry = _KINDS.get(kind)
    return entry is not None and (group is None or group in entry[0])


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
                        raise PatchError(f"{_where(where)}: {_brief(item)} lacks merge key {key!r}")
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
                raise PatchError(f"{_where(at)}: {_brief(item)} lacks merge key {key!r}")
            items.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise PatchError(f"{_where(at)}: {_brief(item)} lacks merge key {key!r}")
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
    kinds = {_json_type(x) for x in (*original, *patch)}
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
