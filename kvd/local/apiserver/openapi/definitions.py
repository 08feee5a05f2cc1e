"""Kubernetes 1.37's API definitions, as kube-apiserver publishes them, for the built-in kinds.

The definitions are vendored in `kubernetes-1.37.json.gz`, made by `scripts/gen-openapi` from the
PyPI package kubernetes-validate 1.37.0 (Apache-2.0; the definitions are Kubernetes' own,
Apache-2.0, The Kubernetes Authors): swagger 2.0 definitions with their descriptions and
x-kubernetes-* extensions, keyed by kube's names (`io.k8s.api.core.v1.Pod`). The file's `origin`
says exactly which wheel they came from.

`Definitions` finds a kind's definition by its x-kubernetes-group-version-kind, collects what a
set of definitions references (`closure`), and renders definitions in the two forms kube serves:
swagger 2.0 (`#/definitions/...` references, description beside `$ref`) and OpenAPI 3.0
(`#/components/schemas/...`, a described reference wrapped in `allOf`, as kube-openapi does).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("kubernetes-1.37.json.gz")
V2_PREFIX = "#/definitions/"
V3_PREFIX = "#/components/schemas/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class Definitions:
    def __init__(self, document: dict[str, Any]) -> None:
        self.origin: dict[str, str] = document["origin"]
        self.schemas: dict[str, dict[str, Any]] = document["definitions"]
        self._by_gvk: dict[tuple[str, str, str], str] = {}
        for name, schema in self.schemas.items():
            for gvk in schema.get("x-kubernetes-group-version-kind") or ():
                self._by_gvk.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
        self._refs: dict[str, frozenset[str]] = {}

    def name_of(self, group: str, version: str, kind: str) -> str | None:
        """The definition of a kind (`io.k8s.api.core.v1.Pod` for ("", "v1", "Pod"))."""
        return self._by_gvk.get((group, version, kind))

    def closure(self, names: Iterable[str]) -> list[str]:
        """`names` and every definition they reference, directly or not, sorted."""
        seen: set[str] = set()
        todo = [n for n in names if n in self.schemas]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(r for r in self._references(name) if r not in seen)
        return sorted(seen)

    def _references(self, name: str) -> frozenset[str]:
        if name not in self._refs:
            found: set[str] = set()
            stack: list[Any] = [self.schemas[name]]
            while stack:
                node = stack.pop()
                if isinstance(node, dict):
                    ref = node.get("$ref")
                    if isinstance(ref, str) and ref.startswith(V2_PREFIX):
                        found.add(ref[len(V2_PREFIX) :])
                    stack.extend(node.values())
                elif isinstance(node, list):
                    stack.extend(node)
            self._refs[name] = frozenset(found)
        return self._refs[name]

    def v2(self, name: str) -> dict[str, Any]:
        """A definition as /openapi/v2 publishes it (the vendored form)."""
        return self.schemas[name]

    def v3(self, name: str) -> dict[str, Any]:
        """A definition as /openapi/v3 publishes it."""
        out = _v3(self.schemas[name], top=True)
        assert isinstance(out, dict)
        return out


def _v3(node: Any, *, top: bool = False) -> Any:
    if isinstance(node, list):
        return [_v3(item) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = {"$ref": V3_PREFIX + ref.removeprefix(V2_PREFIX)}
        rest = {k: _v3(v) for k, v in node.items() if k != "$ref"}
        # kube-openapi wraps a reference that carries its own words in allOf
        return {"allOf": [target], **rest} if rest and not top else {**target, **rest}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {field: _v3(sub) for field, sub in value.items()}
        else:
            out[key] = _v3(value)
    return out


@functools.cache
def load() -> Definitions:
    """The vendored definitions (read once per process)."""
    return Definitions(json.loads(gzip.decompress(DATA.read_bytes())))
