"""Informers: the official client's `SharedInformer`, plus what kvd needs around it.

`kubernetes.informer.SharedInformer` (client ≥ 37) lists, watches from the list's
resourceVersion, relists on 410 Gone and resyncs. Around it this module adds:

- **reconnect backoff**: the upstream loop reconnects at once after a failed watch, so with the API
  server down it spins; the list function is wrapped so a call after a failure first waits
  (exponential, capped, interruptible by `stop`);
- **custom resources**: `CustomObjectsApi` lists return a dict, on which upstream's
  `getattr(resp, "items")` finds `dict.items` and the initial list fails every time; the wrapper
  hands it an object with `.items` and `.metadata.resource_version`;
- **JSON, not models**: lists and watch events are kept as the server's JSON; handlers, `get`
  and `list` see deep copies of it, so a reconciler can never mutate the cache. Decoding into
  the client's generated models costs CPU for nothing, and an object the models refuse (a
  field they require that the server left out) broke the watch on every reconnect, in a loop;
- **synced**: `wait_synced` returns once the first list is in the cache;
- **indexes**: `by_index(name, value)` over functions registered with `add_index`;
- **transform**: as client-go's `SharedIndexInformer.SetTransform`, a function applied to each
  object before it is cached and handed to the handlers, so a cache keeps only what its readers
  read (see `kvd.kube.transforms`). Unlike client-go's it edits the object in place: upstream
  hands the very object it caches to the handlers, so both see the transformed one;
- **project**: `project(func)` reads every cached object without copying it (a scrape counting
  phases must not copy the whole cache).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import random
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from kubernetes import client
from kubernetes.informer import ADDED, DELETED, MODIFIED, SharedInformer
from kubernetes.informer.cache import ObjectCache

from kvd import logs
from kvd.kube.client import Json, to_json

log = logs.get_logger(__name__)

Handler = Callable[[str, Json], None]
"""Called with ("ADDED" | "MODIFIED" | "DELETED", object) on the informer's thread: only enqueue."""
IndexFunc = Callable[[Json], list[str]]
LIST_PAGE = 500
"""Objects per page of a transformed informer's list (client-go's reflector lists 500 at a time):
each page is trimmed as it arrives, so a list of thousands never holds them all whole at once."""
Transform = Callable[[Json], None]
"""Edits an object (the server's JSON) in place before it is cached: it must leave every field
the cache's readers read, and be idempotent (it may run again on an object it already saw)."""


class Informer:
    def __init__(
        self,
        api: client.ApiClient,
        list_func: Callable[..., Any],
        *,
        name: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float = 0.0,
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
        transform: Transform | None = None,
    ) -> None:
        self.name = name
        self._api = api
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._list = _Backoff(
            list_func,
            self._stop,
            self._synced,
            base=backoff_base,
            cap=backoff_max,
            transform=transform,
            page_size=LIST_PAGE if transform is not None else 0,
        )
        self._inner = SharedInformer(
            self._list,
            namespace=namespace,
            resync_period=resync_period,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        if transform is not None:
            self._inner._cache = _TransformingCache(self._inner.cache, transform)
        self._indexes: dict[str, IndexFunc] = {}
        for kind in (ADDED, MODIFIED, DELETED):
            self._inner.add_event_handler(kind, self._dispatcher(kind))
        self._handlers: list[Handler] = []

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._indexes[name] = func

    def start(self) -> None:
        self._inner.start()

    def stop(self) -> None:
        self._stop.set()
        self._inner.stop()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def get(self, key: str) -> Json | None:
        """The cached object `namespace/name` (or `name` when cluster-scoped), copied."""
        obj = self._inner.cache.get_by_key(key)
        return None if obj is None else copy.deepcopy(to_json(self._api, obj))

    def items(self) -> list[Json]:
        return [copy.deepcopy(to_json(self._api, o)) for o in self._inner.cache.list()]

    def by_index(self, index: str, value: str) -> list[Json]:
        """The cached objects `index` maps to `value`, copied. Only those are copied: the index
        function reads the cached object itself (it must not change it). Copying every object
        to test it made each lookup cost the whole cache, and the controller looks up a VMI's
        pods in every reconcile: at 2,000 VMIs a reconcile took half a second of CPU."""
        func = self._indexes[index]
        found = []
        for obj in self._inner.cache.list():
            data = to_json(self._api, obj)
            if value in func(data):
                found.append(copy.deepcopy(data))
        return found

    def project(self, func: Callable[[Json], Any]) -> list[Any]:
        """`func` of every cached object, not copied: `func` must only read it (and return
        nothing that shares its parts, e.g. a string or a number)."""
        return [func(to_json(self._api, o)) for o in self._inner.cache.list()]

    def _dispatcher(self, kind: str) -> Callable[[Any], None]:
        def dispatch(obj: Any) -> None:
            data = to_json(self._api, obj)
            for handler in self._handlers:
                handler(kind, data)

        return dispatch


def key_of(obj: Json) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


class _TransformingCache(ObjectCache):
    """The upstream cache, with `transform` applied to each watched object it is given: a watch
    event's object is put (ADDED, MODIFIED) or removed (DELETED) before the handlers get it. A
    list's objects are transformed page by page as they arrive (`_Backoff`), before the list
    replaces the whole cache and its events fire."""

    def __init__(self, inner: ObjectCache, transform: Transform) -> None:
        super().__init__(key_func=inner._key_func)
        self._transform = transform

    def _put(self, obj: Any) -> None:
        self._transform(obj)
        super()._put(obj)

    def _remove(self, obj: Any) -> None:
        self._transform(obj)
        super()._remove(obj)


class _Backoff:
    """The list function as SharedInformer calls it, with a wait before retrying a failure."""

    def __init__(
        self,
        func: Callable[..., Any],
        stop: threading.Event,
        synced: threading.Event,
        *,
        base: float,
        cap: float,
        transform: Transform | None = None,
        page_size: int = 0,
    ) -> None:
        self._func = func
        self._transform = transform
        self._page_size = page_size
        self._stop = stop
        self._synced = synced
        self._base = base
        self._cap = cap
        self._failures = 0
        # `Watch.stream` decodes events into the type the function's signature says it returns;
        # saying `object` keeps them as the server's JSON (and its resourceVersion tracking).
        functools.update_wrapper(self, func)
        self.__signature__ = inspect.signature(func).replace(return_annotation=object)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._failures:
            delay = min(self._cap, self._base * 2 ** (self._failures - 1))
            self._stop.wait(delay * random.uniform(0.8, 1.2))
        watching = bool(kwargs.get("watch"))
        if not watching:  # the list as JSON too, not as the client's models
            kwargs["_preload_content"] = False
        try:
            result = self._func(*args, **kwargs) if watching else self._listed(args, kwargs)
        except Exception as exc:
            self._failures += 1
            log.warning("list_or_watch_failed", error=str(exc), failures=self._failures)
            raise
        self._failures = 0
        if watching:
            # SharedInformer watches only after its initial list is in the cache.
            self._synced.set()
            return result
        if isinstance(result, dict):
            metadata = result.get("metadata") or {}
            return SimpleNamespace(
                items=result.get("items") or [],
                metadata=SimpleNamespace(resource_version=metadata.get("resourceVersion")),
            )
        return result

    def _listed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The list as one JSON document, read in pages of `page_size` when it is set, each
        page's objects transformed as it arrives. The list's resourceVersion is the last
        page's (a continued list is read at the first page's)."""
        if not self._page_size:
            result = json.loads(self._func(*args, **kwargs).data)
            if self._transform is not None and isinstance(result, dict):
                for item in result.get("items") or []:
                    self._transform(item)
            return result
        items: list[Json] = []
        token = ""
        while True:
            page_kwargs = dict(kwargs, limit=self._page_size)
            if token:
                page_kwargs["_continue"] = token
            page = json.loads(self._func(*args, **page_kwargs).data)
            for item in page.get("items") or []:
                if self._transform is not None:
                    self._transform(item)
                items.append(item)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                return {"items": items, "metadata": metadata}
