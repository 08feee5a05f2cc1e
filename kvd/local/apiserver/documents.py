"""Parsing a request's JSON or YAML document within bounds, off the event loop if it takes long.

kube-apiserver reads at most 3 MiB of a body, and its decoders bound what those bytes may become:
Go's JSON scanner and go-yaml stop at 10,000 levels of nesting, and go-yaml refuses a document
whose aliases expand too far ("excessive aliasing", the fix for CVE-2019-11253). This server keeps
the same three bounds with limits its Python code can honour:

- `MAX_BYTES` (3 MiB) on the wire, and again on what YAML aliases add once expanded: an alias
  counts as often as it is used, so a 400-byte alias bomb is refused (413) instead of becoming
  gigabytes, while a document without aliases is never refused for the length its JSON spelling
  adds (quotes, commas, `null`). Sizes are lengths as compact JSON, computed over the parsed graph
  without expanding it (each distinct node once), so refusing a bomb costs microseconds.
- `MAX_DEPTH` (128) levels of nesting: deeper is refused with 400. Go affords 10,000; here the
  server's own recursive code (deep copies, schema validation and pruning, merge patches, field
  sets) takes a few Python frames per level under a 1,000-frame limit. 128 is serde_json's default,
  five times the deepest object kvd ships (a CRD, 25 levels).
- Time: the bounds make every parse finite, but a 3 MiB YAML document still takes seconds to
  parse in Python. Bodies past `INLINE_JSON` / `INLINE_YAML` bytes are parsed in one worker thread
  (`Parser`), so the single-threaded server keeps answering meanwhile; at most `QUEUE` requests
  wait for it, and the next is answered 429 with Retry-After, as kube-apiserver's max-in-flight
  limit answers.

YAML is read as sigs.k8s.io/yaml reads it into JSON: timestamps stay strings, keys become strings,
and a value JSON cannot hold (binary, sets, NaN) is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml

MAX_BYTES = 3 * 1024 * 1024  # kube-apiserver's --max-request-body-bytes default
MAX_DEPTH = 128
INLINE_JSON = 64 * 1024  # json.loads and the measure take about a millisecond for this much
INLINE_YAML = 4 * 1024  # PyYAML (with libyaml) takes about a millisecond per kilobyte
QUEUE = 8


class DocumentError(ValueError):
    """A body that is not a document this server accepts."""


class Malformed(DocumentError):
    """Not JSON or YAML, or a value JSON cannot hold."""


class TooDeep(DocumentError):
    def __init__(self) -> None:
        super().__init__(f"the document nests deeper than {MAX_DEPTH} levels, the server's limit")


class TooLarge(DocumentError):
    def __init__(self) -> None:
        super().__init__(
            f"YAML aliases expand the document by more than {MAX_BYTES} bytes, the server's limit"
        )


class Busy(Exception):
    """Too many large documents are waiting to be parsed."""


_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml also caps nesting at 1,000


class _Loader(_BASE):  # type: ignore[misc]
    """PyYAML's safe loader, but timestamps stay strings as they do in sigs.k8s.io/yaml."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BASE.yaml_implicit_resolvers.items()
}


def load_json(raw: bytes) -> Any:
    try:
        document = json.loads(raw)
    except RecursionError:
        raise TooDeep() from None
    except ValueError as exc:  # UnicodeDecodeError is one
        raise Malformed(str(exc)) from None
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:  # else it cannot nest that deep
        measure(document)  # JSON has no aliases: its depth is all there is to check
    return document


def load_yaml(raw: bytes) -> Any:
    if raw.lstrip()[:1] in (b"{", b"["):
        # JSON is YAML, and most YAML bodies (kubectl's and helm's apply patches) are JSON
        try:
            return load_json(raw)
        except Malformed:
            pass  # flow-style YAML that is not JSON
    try:
        document = yaml.load(raw, Loader=_Loader)  # a safe loader
    except RecursionError:
        raise TooDeep() from None
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):
            raise TooDeep() from None
        raise Malformed(_short(exc)) from None
    measure(document)
    try:
        # the bounds hold: expand the aliases, so no two places share one mutable value
        return json.loads(json.dumps(document, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise Malformed(f"the document holds a value JSON cannot: {exc}") from None


def measure(document: Any) -> None:
    """Raise TooDeep or TooLarge for a document past the bounds: deeper than MAX_DEPTH, or grown
    by more than MAX_BYTES through shared (aliased) values, in time linear in distinct values."""
    done: dict[int, tuple[int, int]] = {}  # id(container) -> (depth, size as compact JSON)
    distinct = 0  # the size of every distinct container, counted once
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key = id(node)
        children = node.values() if isinstance(node, dict) else node
        if not children_done:
            if key in done:
                continue
            if key in on_path:
                raise TooDeep()  # a recursive alias: infinitely deep
            on_path.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list))
            continue
        depth, own, nested = 1, 1 + len(node), 0  # own: brackets, commas, scalars, keys
        for child in children:
            if isinstance(child, dict | list):
                child_depth, child_size = done[id(child)]
                depth = max(depth, child_depth + 1)
                nested += child_size
            else:
                own += _scalar_size(child)
        if isinstance(node, dict):
            own += sum(_scalar_size(k) + 1 for k in node)  # "key":
        on_path.discard(key)
        done[key] = (depth, own + nested)
        distinct += own
        if depth > MAX_DEPTH:
            raise TooDeep()
        if own + nested - distinct > MAX_BYTES:
            raise TooLarge()


def _scalar_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    return len(str(value)) + 2


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "…"


class Parser:
    """Runs a parse on the loop when it is short, else in one worker thread (bounded queue)."""

    def __init__(self, *, queue: int = QUEUE) -> None:
        self._queue = queue
        self._waiting = 0
        self._executor: ThreadPoolExecutor | None = None

    async def parse(self, load: Callable[[bytes], Any], raw: bytes, *, inline: int) -> Any:
        if len(raw) <= inline:
            return load(raw)
        if self._waiting >= self._queue:
            raise Busy()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kvd-parse")
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, load, raw)
        finally:
            self._waiting -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
