"""structured-merge-diff's four walks over an object and its shape, on plain JSON values.

* `to_set`: the fields a partial object (an applied configuration) sets: every leaf, every
  item of a keyed or set list, every key of a map, and objects that are empty or null.
* `compare`: what changed from one object to the next, as three sets (added, modified,
  removed); a new object or list item is itself added, so an update that creates `data`
  owns `data` too (`".": {}` in FieldsV1).
* `merge`: an applied configuration laid over the live object. The configuration's values
  win; objects merge key by key, keyed and set lists item by item (ordered as
  structured-merge-diff orders them), atomic values are replaced whole.
* `prune`: what an applier no longer sends, removed, unless a manager still owns it.

Inputs are never changed. Outputs share unchanged subtrees with the inputs: deep-copy before
changing one in place.
"""

from __future__ import annotations

from typing import Any, Final

from kvd.local.apiserver.apply import fieldpath
from kvd.local.apiserver.apply.fieldpath import Path, Set
from kvd.local.apiserver.apply.shapes import Shape


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class TypedError(Exception):
    """The object does not fit its shape (a keyed list item without its key)."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{fieldpath.path_string(path)}: {message}")


def _container(value: Any) -> bool:
    return isinstance(value, dict | list)


def item_element(shape: Shape, item: Any, index: int, at: Path = ()) -> str:
    """The path element of a list item: its key values, its value, or its index."""
    if shape.list_type == "set":
        return fieldpath.value(item)
    if shape.list_type == "map" and shape.keys:
        if not isinstance(item, dict):
            raise TypedError(
                at, f"element {index}: associative list with keys has an element that is not a map"
            )
        values = {}
        for k in shape.keys:
            if item.get(k) is not None:
                values[k] = item[k]
            elif k in shape.key_defaults:
                values[k] = shape.key_defaults[k]
            else:
                raise TypedError(
                    at,
                    f"element {index}: associative list with keys has an element that omits key "
                    f'field "{k}" (and doesn\'t have default value)',
                )
        return fieldpath.key(values)
    return fieldpath.index(index)


def _items(shape: Shape, items: list[Any], at: Path) -> dict[str, Any]:
    """Items by path element; the first of duplicates wins, as structured-merge-diff's does."""
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        out.setdefault(item_element(shape, item, i, at), item)
    return out


# --- to_set ------------------------------------------------------------------------------------


def to_set(value: Any, shape: Shape) -> Set:
    """The fields `value` (an applied configuration) sets."""
    out = Set()
    if isinstance(value, dict | list):
        _to_set(value, shape, out, ())
    return out


def _to_set(value: dict[str, Any] | list[Any], shape: Shape, node: Set, at: Path) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            child_shape, named = shape.field(key)
            pe = "f:" + key
            _child_to_set(child, child_shape, node, (*at, pe), named=named)
    elif shape.list_type != "atomic":
        item_shape = shape.item()
        for i, item in enumerate(value):
            pe = item_element(shape, item, i, at)
            node.members.add(pe)
            if _container(item):
                _child_to_set(item, item_shape, node, (*at, pe), named=False)


def _child_to_set(value: Any, shape: Shape, node: Set, at: Path, *, named: bool) -> None:
    pe = at[-1]
    if isinstance(value, dict):
        if shape.atomic or not value or not named:
            node.members.add(pe)
        if not shape.atomic and value:
            sub = Set()
            _to_set(value, shape, sub, at)
            if not sub.empty():
                node.children[pe] = sub
    elif isinstance(value, list):
        if shape.list_type == "atomic" or not named:
            node.members.add(pe)
        if shape.list_type != "atomic" and value:
            sub = Set()
            _to_set(value, shape, sub, at)
            if not sub.empty():
                node.children[pe] = sub
    else:
        node.members.add(pe)


# --- compare -----------------------------------------------------------------------------------


class Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added = Set()
        self.modified = Set()
        self.removed = Set()

    def changed(self) -> Set:
        """Added or modified: what the writer of the new object now owns."""
        return self.added.union(self.modified)

    def same(self) -> bool:
        return self.added.empty() and self.modified.empty() and self.removed.empty()


def compare(old: Any, new: Any, shape: Shape) -> Comparison:
    """What changed from `old` to `new` (either may be MISSING)."""
    out = Comparison()
    _compare(old, new, shape, (), out)
    return out


def _empty(value: Any) -> bool:
    return value is MISSING or value is None or value in ({}, [])


def _compare(old: Any, new: Any, shape: Shape, at: Path, out: Comparison) -> None:
    if old is not MISSING and new is not MISSING and old == new:
        return
    # null takes the other side's form (structured-merge-diff's deduceAtom): a list created
    # where the zero value had null adds its items, not the list
    if old is None and isinstance(new, dict | list):
        old = type(new)()
    elif new is None and isinstance(old, dict | list):
        new = type(old)()
    leaf = True
    if _empty(old) and _empty(new):
        pass  # an empty object or list stands for itself, as a leaf
    elif isinstance(old, dict | _Missing) and isinstance(new, dict | _Missing):
        leaf = shape.atomic
        if not leaf:
            _compare_objects(old, new, shape, at, out)
    elif isinstance(old, list | _Missing) and isinstance(new, list | _Missing):
        leaf = shape.list_type == "atomic"
        if not leaf:
            _compare_lists(old, new, shape, at, out)
    if old is MISSING:
        out.added.insert(at)
    elif new is MISSING:
        out.removed.insert(at)
    elif leaf:
        out.modified.insert(at)


def _compare_objects(old: Any, new: Any, shape: Shape, at: Path, out: Comparison) -> None:
    before = old if isinstance(old, dict) else {}
    after = new if isinstance(new, dict) else {}
    for key in before.keys() | after.keys():
        child_shape, _ = shape.field(key)
        pe = "f:" + key
        _compare(before.get(key, MISSING), after.get(key, MISSING), child_shape, (*at, pe), out)


def _compare_lists(old: Any, new: Any, shape: Shape, at: Path, out: Comparison) -> None:
    item_shape = shape.item()
    before = _items(shape, old, at) if isinstance(old, list) else {}
    after = _items(shape, new, at) if isinstance(new, list) else {}
    for pe, item in after.items():
        _compare(before.get(pe, MISSING), item, item_shape, (*at, pe), out)
    for pe, item in before.items():
        if pe not in after:
            _compare(item, MISSING, item_shape, (*at, pe), out)


# --- merge -------------------------------------------------------------------------------------


def merge(live: Any, config: Any, shape: Shape, at: Path = ()) -> Any:
    """`config` laid over `live`: the configuration's values win."""
    if config is MISSING:
        return live
    if live is MISSING:
        live = None
    if isinstance(live, dict) and isinstance(config, dict) and not shape.atomic:
        out = dict(live)
        for key, value in config.items():
            child_shape, _ = shape.field(key)
            out[key] = merge(live.get(key, MISSING), value, child_shape, (*at, "f:" + key))
        return out
    if isinstance(config, dict) and not shape.atomic:
        return merge({}, config, shape, at)
    if isinstance(config, list) and shape.list_type != "atomic":
        return _merge_list(live if isinstance(live, list) else [], config, shape, at)
    return config


def _merge_list(live: list[Any], config: list[Any], shape: Shape, at: Path) -> list[Any]:
    """structured-merge-diff's item order: the configuration's items in its order, the live
    list's other items where they were, shared items placed by the configuration."""
    item_shape = shape.item()
    lpes = [item_element(shape, x, i, at) for i, x in enumerate(live)]
    rpes = [item_element(shape, x, i, at) for i, x in enumerate(config)]
    lmap: dict[str, Any] = {}
    for pe, x in zip(lpes, live, strict=True):
        lmap.setdefault(pe, x)
    rmap: dict[str, Any] = {}
    for pe, x in zip(rpes, config, strict=True):
        rmap.setdefault(pe, x)
    shared = [pe for pe in dict.fromkeys(rpes) if pe in lmap]
    next_shared = 0
    out: list[Any] = []
    done: set[str] = set()
    li = ri = 0

    def item(pe: str) -> Any:
        return merge(lmap.get(pe, MISSING), rmap[pe], item_shape, (*at, pe))

    while li < len(live) or ri < len(config):
        if li < len(live) and ri < len(config):
            pe = lpes[li]
            if pe == rpes[ri]:
                done.add(pe)
                out.append(item(pe))
                li, ri, next_shared = li + 1, ri + 1, next_shared + 1
                continue
            if pe in rmap and next_shared < len(shared) and shared[next_shared] != pe:
                li += 1  # a shared item, but not the one wanted at this point
                continue
        if li < len(live):
            pe = lpes[li]
            if pe not in rmap:
                out.append(live[li])
                li += 1
                continue
            if pe in done:
                li += 1
                continue
        if ri < len(config):
            pe = rpes[ri]
            done.add(pe)
            out.append(item(pe))
            ri += 1
            if next_shared < len(shared) and shared[next_shared] == pe:
                next_shared += 1
    return out


# --- removal -----------------------------------------------------------------------------------


def _owns(owned: Set | None, pe: str, named: bool) -> bool:
    """Whether a set owns the node `pe` of its level. A struct field counts as owned when
    anything below it is (structured-merge-diff's EnsureNamedFieldsAreMembers)."""
    return owned is not None and (pe in owned.members or (named and pe in owned.children))


def prune(value: Any, last: Set, managed: Set, shape: Shape) -> Any:
    """Remove from `value` what the applier owned (`last`) and no manager owns now
    (`managed`, the applier's new set included); what is below a removed node goes with it."""
    return _prune(value, last, managed, shape)


def _prune(value: Any, last: Set, managed: Set | None, shape: Shape) -> Any:
    if isinstance(value, dict) and not shape.atomic:
        out = {}
        for key, child in value.items():
            child_shape, named = shape.field(key)
            kept = _prune_child(child, "f:" + key, last, managed, child_shape, named=named)
            if kept is not MISSING:
                out[key] = kept
        return out
    if isinstance(value, list) and shape.list_type != "atomic":
        item_shape = shape.item()
        items = []
        for i, item in enumerate(value):
            pe = item_element(shape, item, i)
            kept = _prune_child(item, pe, last, managed, item_shape, named=False)
            if kept is not MISSING:
                items.append(kept)
        return items
    return value


def _prune_child(
    value: Any, pe: str, last: Set, managed: Set | None, shape: Shape, *, named: bool
) -> Any:
    """The child kept, or MISSING when it goes (a container goes when nothing is left in it)."""
    if _owns(last, pe, named) and not _owns(managed, pe, named):
        return MISSING
    below = last.children.get(pe)
    if below is None or not _container(value):
        return value
    kept = _prune(value, below, managed.children.get(pe) if managed else None, shape)
    return MISSING if value and not kept else kept
