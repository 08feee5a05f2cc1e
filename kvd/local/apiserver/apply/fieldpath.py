"""Sets of field paths, as structured-merge-diff keeps them and `FieldsV1` writes them down.

A path is a tuple of path elements; an element is a string in `FieldsV1` notation, so a set
serializes without translation:

* `f:<name>`: a field of an object (`f:spec`, `f:replicas`);
* `k:<json>`: the item of an associative list with these key values (`k:{"name":"nginx"}`,
  keys sorted, compact JSON);
* `v:<json>`: the item of a set-like list with this value (`v:"example.com/finalizer"`);
* `i:<n>`: the item at an index (lists whose items have no identity).

A `Set` is a trie: `members` are the elements that are themselves in the set at this node, and
`children` the elements with paths below them. In `FieldsV1` a member without children is
`"f:x": {}`, and one with children carries `".": {}` among them; a child that is not a member
has no `"."`. Operations return new sets, never change their operands, and share the subtrees
they leave alone, so a set is not changed once built (`insert` is for building one). Every
write of an object reads and writes its managedFields, so a set read from `FieldsV1` keeps that
document and writes it back as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

Path = tuple[str, ...]

# Go's encoding/json escapes these inside strings; kube's keys are written by it.
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
_KIND_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def go_json(value: Any) -> str:
    """Compact JSON with sorted keys, as Go's encoding/json writes a value."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.translate(_GO_ESCAPES)


def field(name: str) -> str:
    return "f:" + name


def key(values: dict[str, Any]) -> str:
    return "k:" + go_json(values)


def value(item: Any) -> str:
    return "v:" + go_json(item)


def index(i: int) -> str:
    return f"i:{i}"


def element_string(pe: str) -> str:
    """How structured-merge-diff prints an element: `.name`, `[name="x"]`, `[="x"]`, `[0]`."""
    kind, text = pe[0], pe[2:]
    if kind == "f":
        return "." + text
    if kind == "k":
        keys = json.loads(text)
        return "[" + ",".join(f"{k}={_go_string(v)}" for k, v in sorted(keys.items())) + "]"
    if kind == "v":
        return f"[={_go_string(json.loads(text))}]"
    return f"[{text}]"


def path_string(path: Path) -> str:
    return "".join(element_string(pe) for pe in path)


def _go_string(v: Any) -> str:
    """structured-merge-diff's value.ToString: strings quoted, the rest as Go prints them."""
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return go_json(v) if isinstance(v, dict | list) else str(v)


def _order(pe: str) -> tuple[int, str]:
    return _KIND_ORDER.get(pe[0], 4), pe[2:]


class Set:
    """A set of paths; see the module docstring."""

    __slots__ = ("_source", "children", "members")

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.children: dict[str, Set] = {}
        self._source: dict[str, Any] | None = None  # the FieldsV1 it was read from

    @classmethod
    def of(cls, *paths: Path) -> Set:
        s = cls()
        for p in paths:
            s.insert(p)
        return s

    def __repr__(self) -> str:
        return f"Set({sorted(self.paths())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Set) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def empty(self) -> bool:
        return not self.members and all(c.empty() for c in self.children.values())

    def insert(self, path: Path) -> None:
        self._source = None
        node = self
        for pe in path[:-1]:
            child = node.children.get(pe)
            if child is None:
                child = node.children[pe] = Set()
            node = child
            node._source = None
        if path:
            node.members.add(path[-1])

    def child(self, pe: str) -> Set | None:
        return self.children.get(pe)

    def has(self, path: Path) -> bool:
        """Whether `path` itself is a member."""
        node: Set | None = self
        for pe in path[:-1]:
            node = node.children.get(pe) if node is not None else None
            if node is None:
                return False
        return node is not None and bool(path) and path[-1] in node.members

    def intersects(self, other: Set) -> bool:
        """Whether the two sets have a member in common."""
        if not self.members.isdisjoint(other.members):
            return True
        small, large = sorted((self.children, other.children), key=len)
        return any((o := large.get(pe)) is not None and c.intersects(o) for pe, c in small.items())

    def union(self, other: Set) -> Set:
        if other.empty():
            return self
        if self.empty():
            return other
        out = Set()
        out.members = self.members | other.members
        for pe in self.children.keys() | other.children.keys():
            a, b = self.children.get(pe), other.children.get(pe)
            if a is not None and b is not None:
                out.children[pe] = a.union(b)
            else:
                out.children[pe] = a if a is not None else b  # type: ignore[assignment]
        return out

    def difference(self, other: Set) -> Set:
        """Members of self not members of other, node by node (a member of `other` does not
        take the paths below it away)."""
        if not self.intersects(other):
            return self
        out = Set()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            o = other.children.get(pe)
            rest = c.difference(o) if o is not None else c
            if not rest.empty():
                out.children[pe] = rest
        return out

    def intersection(self, other: Set) -> Set:
        out = Set()
        out.members = self.members & other.members
        for pe, c in self.children.items():
            o = other.children.get(pe)
            if o is not None:
                both = c.intersection(o)
                if not both.empty():
                    out.children[pe] = both
        return out

    def recursive_difference(self, other: Set) -> Set:
        """Like `difference`, but a member of `other` also takes away everything below it."""
        if other.empty():
            return self
        out = Set()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            if pe in other.members:
                continue
            o = other.children.get(pe)
            rest = c.recursive_difference(o) if o is not None else c
            if not rest.empty():
                out.children[pe] = rest
        return out

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every member path, in structured-merge-diff's order (a node's members, then its
        children's paths)."""
        for pe in sorted(self.members, key=_order):
            yield (*prefix, pe)
        for pe in sorted(self.children, key=_order):
            yield from self.children[pe].paths((*prefix, pe))

    # --- FieldsV1 ----------------------------------------------------------------------------

    def to_fields(self) -> dict[str, Any]:
        """The set as a `fieldsV1` object (the one it was read from, if it was)."""
        return self._source if self._source is not None else self._fields()

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pe in sorted(self.members | self.children.keys(), key=_order):
            c = self.children.get(pe)
            body = c._fields() if c is not None else {}
            if pe in self.members and body:
                body = {".": {}, **body}
            if body or pe in self.members:
                out[pe] = body
        return out

    @classmethod
    def from_fields(cls, fields: Any) -> Set:
        """Read a `fieldsV1` object; ValueError when it is not one."""
        out = cls._read(fields)
        out._source = fields
        return out

    @classmethod
    def _read(cls, fields: Any) -> Set:
        if not isinstance(fields, dict):
            raise ValueError(f"expected an object, got {type(fields).__name__}")
        out = cls()
        for pe, body in fields.items():
            if pe == ".":
                continue
            _check_element(pe)
            if not isinstance(body, dict):
                raise ValueError(f"{pe}: expected an object")
            if not body or "." in body:
                out.members.add(pe)
            if any(k != "." for k in body):
                out.children[pe] = cls._read(body)
        return out


_CHECKED: set[str] = set()  # elements already found valid: keys repeat from write to write


def _check_element(pe: str) -> None:
    if pe in _CHECKED:
        return
    _check_new_element(pe)
    if len(_CHECKED) > 50_000:
        _CHECKED.clear()
    _CHECKED.add(pe)


def _check_new_element(pe: str) -> None:
    kind, sep, text = pe.partition(":")
    if not sep:
        raise ValueError(f"missing colon: {pe}")
    if kind == "i":
        if not text.lstrip("-").isdigit():
            raise ValueError(f"invalid index: {pe}")
    elif kind in ("k", "v"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValueError(f"invalid JSON in path element: {pe}") from None
        if kind == "k" and not isinstance(parsed, dict):
            raise ValueError(f"a key must be a JSON object: {pe}")
    elif kind != "f":
        raise ValueError(f"unknown path element type: {pe}")
