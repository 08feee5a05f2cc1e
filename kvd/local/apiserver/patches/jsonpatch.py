"""RFC 6902 JSON patch (``application/json-patch+json``), and the JSON semantics patches share.

A JSON patch is a list of operations addressed by JSON pointers, applied all or nothing to a copy;
a failure names the operation's number, op and path, so a client can tell which of many operations
went wrong. ``PatchError``, JSON equality (``test``'s: numbers by value, ``true`` is not ``1``) and
the way values are named in messages live here rather than in the package because the strategic
merge compares list items and reports bad values the same way: this module is the one the other
patch modules build on, and imports none of them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any, Final


class PatchError(ValueError):
    """A patch that is malformed or does not apply; the message names the operation and path."""


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
    kind = json_type(value)
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def json_type(value: Any) -> str:
    """The JSON type of a decoded value as messages name it (``list`` rather than ``array``)."""
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
        raise _OpError(f"unknown op {brief(op)}" if "op" in operation else 'missing "op"')
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
        expected = brief(operation["value"])
        raise _OpError(f"test failed: {_show(path)} is {brief(actual)}, not {expected}")
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


def brief(value: Any) -> str:
    """``value`` as compact JSON for an error message, cut to 80 characters."""
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
