"""Whatever a client sends, the parser answers with kvd's ValidationError or an object."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvd.api import codec, kinds
from kvd.api.errors import ValidationError
from tests.api.conftest import MANIFESTS, manifest

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
MANIFEST_NAMES = sorted(p.name for p in MANIFESTS.glob("*.yaml"))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _load(data: object) -> None:
    try:
        obj = kinds.load(data)
    except ValidationError as exc:
        assert exc.errors, "a ValidationError must say what is wrong"
        return
    # whatever loads must serialise and load again to the same object
    assert kinds.load(codec.encode(obj)) == obj


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_random_json_never_crashes(data: Any) -> None:
    _load(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MANIFEST_NAMES), st.data(), JSON)
def test_mutated_manifests_never_crash(name: str, data: st.DataObject, value: Any) -> None:
    """Replace one subtree of a valid manifest with junk: deep paths are where parsers break."""
    doc = manifest(name)
    path = data.draw(st.sampled_from(_paths(doc)))
    _load(_replace(copy.deepcopy(doc), path, value))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MANIFEST_NAMES), st.data(), st.text(max_size=10), JSON)
def test_added_fields_never_crash(name: str, data: st.DataObject, key: str, value: Any) -> None:
    doc = manifest(name)
    dicts = [p for p in _paths(doc) if isinstance(_get(doc, p), dict)]
    path = data.draw(st.sampled_from(dicts))
    _get(doc, path)[key] = value
    _load(doc)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc
