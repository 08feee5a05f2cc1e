"""ControllerExpectations, as client-go's: counts per key, satisfied when met or expired."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from kvd.kube.expectations import TTL, Expectations
from tests.support.clock import FakeClock

KEY = "default/vm1"


Step = Callable[[Expectations, FakeClock], None]


def advance(seconds: float) -> Step:
    def step(_: Expectations, clock: FakeClock) -> None:
        clock.advance(seconds)

    return step


def call(method: str, *args: int, **kwargs: int) -> Step:
    def step(e: Expectations, _: FakeClock) -> None:
        getattr(e, method)(KEY, *args, **kwargs)

    return step


@pytest.mark.parametrize(
    ("steps", "satisfied", "pending"),
    [
        pytest.param([], True, None, id="no-record"),
        pytest.param([call("expect_creations", 1)], False, (1, 0), id="creation-pending"),
        pytest.param(
            [call("expect_creations", 1), call("creation_observed")],
            True,
            (0, 0),
            id="creation-observed",
        ),
        pytest.param(
            [call("expect_creations", 2), call("creation_observed")],
            False,
            (1, 0),
            id="one-of-two-creations-observed",
        ),
        pytest.param(
            [call("expect_creations", 1), call("creation_observed"), call("creation_observed")],
            True,
            (-1, 0),
            id="observed-more-than-expected",
        ),
        pytest.param([call("expect_deletions", 1)], False, (0, 1), id="deletion-pending"),
        pytest.param(
            [call("expect_deletions", 1), call("deletion_observed")],
            True,
            (0, 0),
            id="deletion-observed",
        ),
        pytest.param(
            [call("expect_deletions", 1), call("creation_observed")],
            False,
            (-1, 1),
            id="a-creation-does-not-count-as-a-deletion",
        ),
        pytest.param(
            [call("expect_creations", 1), call("lower_expectations", adds=1)],
            True,
            (0, 0),
            id="failed-creation-lowered",
        ),
        pytest.param(
            [call("expect_creations", 1), call("raise_expectations", adds=1, deletes=1)],
            False,
            (2, 1),
            id="raised",
        ),
        pytest.param(
            [call("creation_observed"), call("lower_expectations", deletes=1)],
            True,
            None,
            id="observed-without-record-is-a-no-op",
        ),
        pytest.param(
            [call("raise_expectations", adds=1)], True, None, id="raise-without-record-is-a-no-op"
        ),
        pytest.param(
            [call("expect_creations", 3), call("expect_deletions", 1)],
            False,
            (0, 1),
            id="expect-replaces-the-record",
        ),
        pytest.param(
            [call("expect_creations", 1), advance(TTL)], False, (1, 0), id="at-the-ttl-still-waits"
        ),
        pytest.param([call("expect_creations", 1), advance(TTL + 1)], True, (1, 0), id="expired"),
        pytest.param(
            [
                call("expect_creations", 1),
                advance(TTL - 1),
                call("expect_creations", 1),
                advance(2),
            ],
            False,
            (1, 0),
            id="expect-restarts-the-ttl",
        ),
        pytest.param(
            [call("expect_creations", 2), advance(TTL - 1), call("creation_observed"), advance(2)],
            True,
            (1, 0),
            id="observing-keeps-the-timestamp",
        ),
    ],
)
def test_expectations(steps: list[Step], satisfied: bool, pending: tuple[int, int] | None) -> None:
    clock = FakeClock()
    e = Expectations(clock=clock)
    for step in steps:
        step(e, clock)
    assert e.satisfied(KEY) is satisfied
    assert e.pending(KEY) == pending


def test_keys_are_independent_and_delete_forgets() -> None:
    e = Expectations()
    e.expect_creations("default/a", 1)
    e.expect_creations("default/b", 1)
    e.creation_observed("default/a")
    assert e.satisfied("default/a")
    assert not e.satisfied("default/b")
    e.delete("default/b")
    assert e.satisfied("default/b") and e.pending("default/b") is None


def test_ttl_is_configurable() -> None:
    clock = FakeClock()
    e = Expectations(ttl=10, clock=clock)
    e.expect_creations(KEY, 1)
    clock.advance(11)
    assert e.satisfied(KEY)


def test_concurrent_observations_are_all_counted() -> None:
    e = Expectations()
    e.expect_creations(KEY, 8 * 1000)
    threads = [
        threading.Thread(target=lambda: [e.creation_observed(KEY) for _ in range(1000)])
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert e.pending(KEY) == (0, 0) and e.satisfied(KEY)
