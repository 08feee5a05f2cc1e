"""The API server's store: revisions, optimistic concurrency, watch history, restarts.

Everything runs against a real SQLite file in a temporary directory. pytest-asyncio is not
installed: async checks run through `run()`, one event loop per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvd.local.apiserver import store as store_module
from kvd.local.apiserver.store import (
    AlreadyExists,
    Closed,
    Conflict,
    Event,
    Gone,
    NotFound,
    ResourceKey,
    Store,
    StoreError,
    Watcher,
)

PODS = ResourceKey("", "pods")
VMIS = ResourceKey("kubevirt.io", "virtualmachineinstances")
NODES = ResourceKey("", "nodes")
WAIT = 5.0  # seconds an expected event may take before the test fails

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    s = Store(path)
    yield s
    s.close()


def obj(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def rv(o: dict[str, Any]) -> int:
    return int(o["metadata"]["resourceVersion"])


async def take(watcher: Watcher, n: int) -> list[Event]:
    """The next n events, failing if any takes longer than WAIT."""
    events = []
    for i in range(n):
        event = await watcher.next(WAIT)
        assert event is not None, f"event {i + 1} of {n} did not arrive within {WAIT}s"
        events.append(event)
    return events


async def nothing_more(watcher: Watcher) -> None:
    """Assert nothing else is pending (timeout 0 returns at once: no sleeping)."""
    extra = await watcher.next(0)
    assert extra is None, f"unexpected event {extra}"


def summary(events: list[Event]) -> list[tuple[str, int, str, str]]:
    return [(e.type, e.revision, e.namespace, e.name) for e in events]


# --- CRUD ---------------------------------------------------------------------------------------


def test_create_returns_the_stored_object_with_its_resource_version(store: Store) -> None:
    created = store.create(PODS, "default", "a", obj("a", image="x"))
    assert rv(created) == store.revision == 1
    assert created == store.get(PODS, "default", "a")
    assert created["spec"] == {"image": "x"}
    node = store.create(NODES, "", "n1", {"kind": "Node", "metadata": {"name": "n1"}})
    assert store.get(NODES, "", "n1") == node
    assert store.get(PODS, "default", "missing") is None
    assert store.get(PODS, "other", "a") is None


def test_create_of_a_taken_name_is_already_exists(store: Store) -> None:
    store.create(PODS, "default", "a", obj("a"))
    with pytest.raises(AlreadyExists):
        store.create(PODS, "default", "a", obj("a"))
    assert store.revision == 1
    # the same name elsewhere is a different object
    store.create(PODS, "other", "a", obj("a", "other"))
    store.create(VMIS, "default", "a", obj("a"))


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda s: s.update(PODS, "default", "a", obj("a"), expected=None), id="update"
        ),
        pytest.param(lambda s: s.delete(PODS, "default", "a"), id="delete"),
    ],
)
def test_writes_to_a_missing_object_are_not_found(store: Store, write: Any) -> None:
    with pytest.raises(NotFound):
        write(store)
    assert store.revision == 0


def test_revisions_strictly_increase_across_kinds(store: Store) -> None:
    revisions = [
        rv(store.create(PODS, "default", "a", obj("a"))),
        rv(store.create(VMIS, "default", "a", obj("a"))),
        rv(store.create(NODES, "", "n", obj("n", ""))),
        rv(store.update(PODS, "default", "a", obj("a", image="y"), expected=1)),
        rv(store.delete(VMIS, "default", "a")),
        rv(store.create(VMIS, "default", "a", obj("a"))),
    ]
    assert revisions == [1, 2, 3, 4, 5, 6]
    assert store.revision == 6


def test_list_is_sorted_and_carries_the_revision(store: Store) -> None:
    for namespace, name in [("b", "z"), ("a", "y"), ("b", "c"), ("a", "x")]:
        store.create(PODS, namespace, name, obj(name, namespace))
    store.create(VMIS, "a", "vmi", obj("vmi", "a"))
    items, revision = store.list(PODS, None)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "c"),
        ("b", "z"),
    ]
    assert revision == 5
    items, revision = store.list(PODS, "b")
    assert [o["metadata"]["name"] for o in items] == ["c", "z"]
    assert revision == 5
    assert store.list(PODS, "none") == ([], 5)
    assert store.list(NODES, None) == ([], 5)


def test_update_checks_the_resource_version_the_caller_read(store: Store) -> None:
    first = store.create(PODS, "default", "a", obj("a", image="1"))
    second = store.update(PODS, "default", "a", obj("a", image="2"), expected=rv(first))
    assert rv(second) == rv(first) + 1
    with pytest.raises(Conflict):
        store.update(PODS, "default", "a", obj("a", image="3"), expected=rv(first))
    assert store.get(PODS, "default", "a") == second
    third = store.update(PODS, "default", "a", obj("a", image="3"), expected=rv(second))
    assert third["spec"] == {"image": "3"}
    unconditional = store.update(PODS, "default", "a", obj("a", image="4"), expected=None)
    assert rv(unconditional) == rv(third) + 1


def test_an_update_that_changes_nothing_is_not_a_write(store: Store) -> None:
    created = store.create(PODS, "default", "a", obj("a", image="1", cpu="2"))
    watcher = store.watch(PODS, None, store.revision)
    # the same content, keys in another order and an outdated resourceVersion inside
    same: dict[str, Any] = {
        "spec": {"cpu": "2", "image": "1"},
        "metadata": {"namespace": "default", "name": "a"},
    }
    same |= {"kind": "Pod", "apiVersion": "v1"}
    same["metadata"]["resourceVersion"] = "999"
    assert store.update(PODS, "default", "a", same, expected=rv(created)) == created
    assert store.revision == rv(created)
    run(nothing_more(watcher))
    with pytest.raises(Conflict):  # the precondition is checked first, as kube-apiserver does
        store.update(PODS, "default", "a", same, expected=rv(created) - 1)


def test_delete_returns_the_final_object_with_a_new_resource_version(store: Store) -> None:
    created = store.create(PODS, "default", "a", obj("a", image="1"))
    store.create(PODS, "default", "b", obj("b"))
    with pytest.raises(Conflict):
        store.delete(PODS, "default", "a", expected=rv(created) + 1)
    final = store.delete(PODS, "default", "a", expected=rv(created))
    assert rv(final) == store.revision == 3
    assert final["spec"] == {"image": "1"}
    assert store.get(PODS, "default", "a") is None
    assert [o["metadata"]["name"] for o in store.list(PODS, None)[0]] == ["b"]
    with pytest.raises(NotFound):
        store.delete(PODS, "default", "a")
    # the name is free again
    assert rv(store.create(PODS, "default", "a", obj("a"))) == 4


def test_returned_dicts_are_independent_copies(store: Store) -> None:
    given_obj = obj("a", image="1")
    created = store.create(PODS, "default", "a", given_obj)
    assert "resourceVersion" not in given_obj["metadata"], "the caller's dict was changed"
    given_obj["spec"]["image"] = "changed"
    created["spec"]["image"] = "changed"
    fetched = store.get(PODS, "default", "a")
    assert fetched is not None
    fetched["spec"]["image"] = "changed"
    store.list(PODS, None)[0][0]["spec"]["image"] = "changed"
    event = run(take(store.watch(PODS, None, 0), 1))[0]
    event.object["spec"]["image"] = "changed"
    assert event.object["spec"] == {"image": "1"}
    assert store.get(PODS, "default", "a") == {**obj("a", image="1")} | {
        "metadata": {"name": "a", "namespace": "default", "resourceVersion": "1"}
    }


def test_objects_that_are_not_json_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.create(PODS, "default", "a", obj("a", weight=float("nan")))
    assert store.revision == 0
    assert store.get(PODS, "default", "a") is None


# --- watch --------------------------------------------------------------------------------------


def test_watch_delivers_exactly_the_later_events_in_order(store: Store) -> None:
    store.create(PODS, "default", "a", obj("a"))
    since = store.revision
    store.create(PODS, "default", "b", obj("b"))
    store.create(PODS, "other", "c", obj("c", "other"))
    store.create(VMIS, "default", "v", obj("v"))
    store.update(PODS, "default", "a", obj("a", image="2"), expected=1)
    store.delete(PODS, "default", "b")

    async def check() -> None:
        everything = store.watch(PODS, None, since)
        assert summary(await take(everything, 4)) == [
            ("ADDED", 2, "default", "b"),
            ("ADDED", 3, "other", "c"),
            ("MODIFIED", 5, "default", "a"),
            ("DELETED", 6, "default", "b"),
        ]
        await nothing_more(everything)
        default = store.watch(PODS, "default", since)
        events = await take(default, 3)
        assert summary(events) == [
            ("ADDED", 2, "default", "b"),
            ("MODIFIED", 5, "default", "a"),
            ("DELETED", 6, "default", "b"),
        ]
        assert events[1].object["spec"] == {"image": "2"}
        assert rv(events[2].object) == 6, "a DELETED event carries the deletion's revision"
        assert events[1].key == PODS
        await nothing_more(default)
        every_resource = store.watch(None, None, since)
        assert [e.revision for e in await take(every_resource, 5)] == [2, 3, 4, 5, 6]
        await nothing_more(every_resource)

    run(check())


def test_watch_then_live_events(store: Store) -> None:
    store.create(PODS, "default", "a", obj("a"))

    async def check() -> None:
        watcher = store.watch(PODS, "default", 0)
        waiting = asyncio.create_task(take(watcher, 3))
        await asyncio.sleep(0)  # let it catch up and block: the next events are live
        store.create(VMIS, "default", "v", obj("v"))  # not for this watcher
        store.create(PODS, "other", "x", obj("x", "other"))  # nor this
        store.create(PODS, "default", "b", obj("b"))
        store.delete(PODS, "default", "a")
        assert summary(await waiting) == [
            ("ADDED", 1, "default", "a"),
            ("ADDED", 4, "default", "b"),
            ("DELETED", 5, "default", "a"),
        ]
        assert watcher.revision == 5
        assert await watcher.next(0.01) is None  # a timeout is None, not an error
        assert watcher.revision == 5

    run(check())


def test_watch_from_a_future_revision_waits_for_it(store: Store) -> None:
    async def check() -> None:
        watcher = store.watch(PODS, None, 2)
        assert watcher.revision == 0, "a bookmark never claims revisions not yet written"
        for name in "abc":
            store.create(PODS, "default", name, obj(name))
        assert summary(await take(watcher, 1)) == [("ADDED", 3, "default", "c")]

    run(check())


def test_watch_older_than_the_history_is_gone(path: Path) -> None:
    store = Store(path, history=5)
    try:
        for i in range(10):
            store.create(PODS, "default", f"p{i}", obj(f"p{i}"))
        assert store.oldest == 6
        with pytest.raises(Gone) as gone:
            store.watch(PODS, None, 4)
        assert gone.value.oldest == 6
        assert "too old resource version: 4 (6)" in str(gone.value)
        watcher = store.watch(PODS, None, 5)
        assert [e.revision for e in run(take(watcher, 5))] == [6, 7, 8, 9, 10]
    finally:
        store.close()


def test_a_watcher_that_falls_out_of_the_window_gets_gone(path: Path) -> None:
    store = Store(path, history=5)
    try:
        store.create(PODS, "default", "a", obj("a"))
        slow = store.watch(PODS, None, 0)
        fast = store.watch(PODS, None, 0)
        for i in range(6):
            store.update(PODS, "default", "a", obj("a", n=i), expected=None)
            run(take(fast, 1))
        # the slow one still needs revision 1; the window now starts at 3
        with pytest.raises(Gone) as gone:
            run(slow.next(0))
        assert gone.value.oldest == 3
        assert [e.revision for e in run(take(fast, 1))] == [7]
    finally:
        store.close()


def test_concurrent_watchers_all_get_every_event(store: Store) -> None:
    async def check() -> None:
        watchers = [store.watch(PODS, None, 0) for _ in range(5)]
        everything = store.watch(None, None, 0)
        readers = [asyncio.create_task(take(w, 60)) for w in watchers]
        readers.append(asyncio.create_task(take(everything, 70)))
        pods = []
        for i in range(60):
            pods.append(rv(store.create(PODS, "default", f"p{i}", obj(f"p{i}"))))
            if i % 6 == 0:
                store.create(NODES, "", f"n{i}", obj(f"n{i}", ""))
            if i % 7 == 0:
                await asyncio.sleep(0)  # some events arrive while readers block, some before
        results = await asyncio.gather(*readers)
        for events in results[:-1]:
            assert [e.revision for e in events] == pods
        assert [e.revision for e in results[-1]] == list(range(1, 71))

    run(check())


def test_closing_ends_blocked_and_later_watches(store: Store) -> None:
    async def check() -> None:
        watcher = store.watch(PODS, None, 0)
        blocked = asyncio.create_task(watcher.next(None))
        await asyncio.sleep(0)
        watcher.close()
        with pytest.raises(Closed):
            await blocked
        other = store.watch(PODS, None, 0)
        blocked = asyncio.create_task(other.next(None))
        await asyncio.sleep(0)
        store.close()
        with pytest.raises(Closed):
            await blocked

    run(check())
    with pytest.raises(Closed):
        store.create(PODS, "default", "a", obj("a"))
    with pytest.raises(Closed):
        store.watch(PODS, None, 0)
    assert "store-checkpointer" not in {t.name for t in threading.enumerate()}


# --- restarts -----------------------------------------------------------------------------------


def test_a_restart_keeps_objects_revision_and_history(path: Path) -> None:
    store = Store(path)
    store.create(PODS, "default", "a", obj("a"))
    store.create(PODS, "default", "b", obj("b"))
    store.update(PODS, "default", "a", obj("a", image="2"), expected=1)
    store.delete(PODS, "default", "b")
    store.create(NODES, "", "n", obj("n", ""))
    before = {key: store.list(key, None) for key in (PODS, NODES)}
    store.close()

    store = Store(path)
    try:
        assert store.revision == 5
        assert {key: store.list(key, None) for key in (PODS, NODES)} == before
        created = store.create(PODS, "default", "c", obj("c"))
        assert rv(created) == 6
        watcher = store.watch(PODS, None, 1)  # a revision from before the restart
        assert summary(run(take(watcher, 4))) == [
            ("ADDED", 2, "default", "b"),
            ("MODIFIED", 3, "default", "a"),
            ("DELETED", 4, "default", "b"),
            ("ADDED", 6, "default", "c"),
        ]
        deleted = run(take(store.watch(PODS, None, 3), 1))[0]
        assert (deleted.type, rv(deleted.object)) == ("DELETED", 4)
    finally:
        store.close()


def test_events_carry_the_state_before_them_across_a_restart(path: Path) -> None:
    store = Store(path)
    try:
        store.create(PODS, "default", "a", obj("a", image="1"))
        store.update(PODS, "default", "a", obj("a", image="2"), expected=None)
        store.delete(PODS, "default", "a")
        for reopened in (False, True):
            if reopened:
                store.close()
                store = Store(path)
            added, modified, deleted = run(take(store.watch(PODS, None, 0), 3))
            assert added.previous is None
            assert modified.previous is not None and modified.previous["spec"] == {"image": "1"}
            assert rv(modified.previous) == 1
            # a delete's previous state is its final one, at the deletion's revision
            assert deleted.previous == deleted.object and rv(deleted.object) == 3
    finally:
        store.close()


def test_the_state_before_an_update_of_a_long_unchanged_object_survives_trimming(
    path: Path,
) -> None:
    store = Store(path, history=10)
    store.create(PODS, "default", "old", obj("old", image="1"))
    store.create(PODS, "default", "busy", obj("busy", n=0))
    for i in range(1, 1993):
        store.update(PODS, "default", "busy", obj("busy", n=i), expected=None)
    changed = store.update(PODS, "default", "old", obj("old", image="2"), expected=None)
    assert rv(changed) == 1995
    for i in range(1993, 2003):  # the trim at 2000 drops old's first write from the table
        store.update(PODS, "default", "busy", obj("busy", n=i), expected=None)
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM events WHERE revision = 1").fetchone() == (0,)

    store = Store(path, history=1000)  # a window reaching back to the update
    try:
        assert store.oldest <= rv(changed)
        watcher = store.watch(PODS, None, rv(changed) - 1)
        (event,) = run(take(watcher, 1))
        assert event.previous is not None and event.previous["spec"] == {"image": "1"}
    finally:
        store.close()


def test_a_database_from_before_previous_states_replays_only_what_it_can(path: Path) -> None:
    store = Store(path, history=100)
    store.create(PODS, "default", "a", obj("a", image="1"))  # 1
    store.create(PODS, "default", "b", obj("b", n=0))  # 2
    for i in range(1, 5):
        store.update(PODS, "default", "b", obj("b", n=i), expected=None)  # 3 to 6
    store.update(PODS, "default", "a", obj("a", image="2"), expected=None)  # 7
    store.update(PODS, "default", "b", obj("b", n=5), expected=None)  # 8
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:  # as an older kvd wrote it
        db.execute("ALTER TABLE events DROP COLUMN prev")
        db.commit()

    store = Store(path, history=4)  # reads back revisions 4 to 8: a's first write is not there
    try:
        # revision 7 cannot be replayed (a's state before it is unknown): a watch starts after
        with pytest.raises(Gone):
            store.watch(PODS, None, 6)
        assert store.oldest == 8
        (eight,) = run(take(store.watch(PODS, None, 7), 1))
        assert eight.previous is not None and eight.previous["spec"] == {"n": 4}
        store.update(PODS, "default", "a", obj("a", image="3"), expected=None)
        (nine,) = run(take(store.watch(PODS, None, 8), 1))
        assert nine.previous is not None and nine.previous["spec"] == {"image": "2"}
    finally:
        store.close()


def test_a_restart_after_deleting_everything_does_not_reuse_revisions(path: Path) -> None:
    store = Store(path)
    store.create(PODS, "default", "a", obj("a"))
    store.delete(PODS, "default", "a")
    store.close()
    store = Store(path)
    try:
        assert store.revision == 2
        assert rv(store.create(PODS, "default", "a", obj("a"))) == 3
    finally:
        store.close()


def test_a_restart_keeps_only_the_window_and_trims_the_table(path: Path) -> None:
    store = Store(path, history=10)
    store.create(PODS, "default", "a", obj("a"))
    for i in range(2499):
        store.update(PODS, "default", "a", obj("a", n=i), expected=None)
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
    assert rows <= 10 + 1 + 1000, f"{rows} events kept on disk for a window of 10 (margin 1)"

    store = Store(path, history=10)
    try:
        assert (store.revision, store.oldest) == (2500, 2491)
        with pytest.raises(Gone):
            store.watch(PODS, None, 2489)
        assert [e.revision for e in run(take(store.watch(PODS, None, 2490), 10))] == list(
            range(2491, 2501)
        )
        got = store.get(PODS, "default", "a")
        assert got is not None
        assert got["spec"] == {"n": 2498}
    finally:
        store.close()
    # a larger window after a restart still only has the events that were kept
    store = Store(path, history=100_000)
    try:
        assert store.oldest <= 2491
        with pytest.raises(Gone):
            store.watch(PODS, None, 0)
    finally:
        store.close()


def _largest_wal_under_writes(store: Store, path: Path) -> int:
    """6000 updates of a 2 KB object with no pause; the WAL's largest size along the way."""
    wal = path.with_name(path.name + "-wal")
    body = obj("a", padding="x" * 2000)
    store.create(PODS, "default", "a", body)
    largest = 0
    for i in range(6000):
        store.update(PODS, "default", "a", {**body, "n": i}, expected=None)
        if i % 100 == 0:
            largest = max(largest, wal.stat().st_size)
    return largest


def test_the_wal_stays_small_under_writes_that_never_pause(store: Store, path: Path) -> None:
    largest = _largest_wal_under_writes(store, path)
    # Some 150 MiB went through the WAL; without the store's own checkpoint it would reach 64 MiB
    # (SQLite's autocheckpoint, the backstop). 8 MiB is when the store acts, plus what the
    # writes add before it notices.
    assert largest < 32 * 2**20, f"the WAL grew to {largest / 2**20:.0f} MiB"


def test_the_wal_stays_small_when_the_checkpointer_thread_never_runs(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine busy enough starves the checkpointer's thread: what it last reported of the WAL
    # is then stale, and the store must notice on its own that nothing is being copied back.
    monkeypatch.setattr(store_module._Checkpointer, "_catch_up", lambda self, db: None)
    with contextlib.closing(Store(path)) as store:
        largest = _largest_wal_under_writes(store, path)
    assert largest < 32 * 2**20, f"the WAL grew to {largest / 2**20:.0f} MiB"


def test_a_second_store_on_the_same_file_is_refused(store: Store, path: Path) -> None:
    with pytest.raises(StoreError):
        Store(path)
    store.create(PODS, "default", "a", obj("a"))  # the first one is unaffected


# --- property: the history replays to the state ----------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
OPS = st.lists(
    st.tuples(
        # restarts are rarer: each one costs a checkpoint's fsyncs
        st.sampled_from(["create", "update", "delete"] * 3 + ["restart"]),
        st.sampled_from([PODS, VMIS]),
        st.sampled_from(["default", "other"]),
        NAMES,
        st.integers(0, 3),
    ),
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(ops=OPS)
def test_replaying_the_history_rebuilds_the_listed_state(
    ops: list[tuple[str, ResourceKey, str, str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        store = Store(path, history=1000)
        model: dict[tuple[ResourceKey, str, str], dict[str, Any]] = {}
        try:
            for op, key, namespace, name, value in ops:
                ident = (key, namespace, name)
                body = obj(name, namespace, value=value)
                if op == "restart":
                    store.close()
                    store = Store(path, history=1000)
                elif op == "create" and ident not in model:
                    model[ident] = store.create(key, namespace, name, body)
                elif op == "update" and ident in model:
                    model[ident] = store.update(key, namespace, name, body, expected=None)
                elif op == "delete" and ident in model:
                    store.delete(key, namespace, name, expected=rv(model.pop(ident)))
                elif op == "create":
                    with pytest.raises(AlreadyExists):
                        store.create(key, namespace, name, body)
                elif op == "update":
                    with pytest.raises(NotFound):
                        store.update(key, namespace, name, body, expected=None)
                else:
                    with pytest.raises(NotFound):
                        store.delete(key, namespace, name)

            replayed: dict[tuple[ResourceKey, str, str], dict[str, Any]] = {}

            async def replay() -> None:
                watcher = store.watch(None, None, 0)
                revisions = []
                while (event := await watcher.next(0)) is not None:
                    revisions.append(event.revision)
                    ident = (event.key, event.namespace, event.name)
                    if event.type == "DELETED":
                        assert replayed.pop(ident, None) is not None, f"{event} of nothing"
                    else:
                        assert (ident in replayed) == (event.type == "MODIFIED"), event
                        replayed[ident] = event.object
                assert revisions == list(range(1, store.revision + 1))

            run(replay())
            for key in (PODS, VMIS):
                items, revision = store.list(key, None)
                assert revision == store.revision
                listed = {
                    (key, o["metadata"]["namespace"], o["metadata"]["name"]): o for o in items
                }
                assert listed == {i: o for i, o in replayed.items() if i[0] == key}
            assert replayed == model
        finally:
            store.close()
