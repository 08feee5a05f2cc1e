from __future__ import annotations

import threading

import pytest

from kvd.launcher.broadcast import Broadcaster


def test_initial_then_live_items_in_order() -> None:
    b: Broadcaster[int] = Broadcaster(capacity=10)
    sub = b.subscribe(lambda: [0])
    for i in range(1, 4):
        b.publish(i)
    assert [sub.get(timeout=1) for _ in range(4)] == [0, 1, 2, 3]


def test_every_subscriber_gets_every_item_from_concurrent_publishers() -> None:
    b: Broadcaster[int] = Broadcaster(capacity=10_000)
    subs = [b.subscribe() for _ in range(5)]
    threads = [
        threading.Thread(target=lambda k=k: [b.publish(k * 1000 + i) for i in range(500)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sub in subs:
        got = [sub.get(timeout=1) for _ in range(2000)]
        assert sorted(x for x in got if x is not None) == sorted(
            k * 1000 + i for k in range(4) for i in range(500)
        )
        # each publisher's own items keep their order
        for k in range(4):
            mine = [x for x in got if x is not None and x // 1000 == k]
            assert mine == sorted(mine)


def test_slow_subscriber_is_cut_off_without_blocking_the_publisher() -> None:
    b: Broadcaster[int] = Broadcaster(capacity=3)
    slow, fast = b.subscribe(), b.subscribe()
    for i in range(3):
        b.publish(i)
        assert fast.get(timeout=1) == i
    b.publish(3)  # slow already holds 3 items: it overflows
    assert fast.get(timeout=1) == 3
    assert slow.overflowed
    assert [slow.get(timeout=1) for _ in range(4)] == [0, 1, 2, None]
    assert slow.get(timeout=1) is None  # stays ended
    assert b.subscriber_count == 1


def test_close_ends_current_and_future_subscriptions() -> None:
    b: Broadcaster[str] = Broadcaster()
    sub = b.subscribe()
    b.close()
    assert sub.get(timeout=1) is None
    late = b.subscribe(lambda: ["snapshot"])
    assert late.get(timeout=1) == "snapshot"
    assert late.get(timeout=1) is None


def test_unsubscribe_ends_the_subscription() -> None:
    b: Broadcaster[int] = Broadcaster()
    sub = b.subscribe()
    sub.close()
    b.publish(1)
    assert sub.get(timeout=1) is None
    assert b.subscriber_count == 0


def test_get_times_out_when_nothing_comes() -> None:
    b: Broadcaster[int] = Broadcaster()
    with pytest.raises(TimeoutError):
        b.subscribe().get(timeout=0.01)
