"""The work queue's guarantees (client-go's): dedup, one worker per key, delays, backoff."""

from __future__ import annotations

import threading

from kvd.kube.workqueue import WorkQueue
from tests.support.clock import FakeClock


def test_a_key_added_twice_is_processed_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert [q.get(timeout=0), q.get(timeout=0), q.get(timeout=0)] == ["a", "b", None]


def test_a_key_added_while_processing_comes_back_after_done_not_before() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")  # an event while a worker holds the key
    assert q.get(timeout=0) is None, "handed to a second worker while the first still works"
    q.done("a")
    assert q.get(timeout=0) == "a"


def test_add_after_waits_for_its_time() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 5)
    assert q.get(timeout=0) is None
    clock.advance(5)
    assert q.get(timeout=0) == "a"


def test_rate_limited_delay_doubles_until_forget() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=1, max_delay=5)
    assert [q.backoff(n) for n in range(5)] == [1, 2, 4, 5, 5]
    q.add_rate_limited("a")
    q.add_rate_limited("a")
    assert q.failures("a") == 2
    q.forget("a")
    assert q.failures("a") == 0


def test_shutdown_wakes_a_waiting_worker() -> None:
    q: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(q.get()))
    worker.start()
    q.shutdown()
    worker.join(timeout=5)
    assert got == [None]
