"""Waiting in tests: poll observable state until a deadline, or sample an invariant over a span.

CONVENTIONS.md: no sleeps to wait for things. `wait_for` polls a probe until it returns something
truthy and returns that; when time runs out it fails naming what was awaited, the last value the
probe gave (or the exception it raised, for exceptions it was told to expect), and whatever
`diagnose` adds (a daemon's log, a console). A probe that raises anything else ends the wait at
once: that is how a probe says "this can never happen now" (the process died, the stream ended).

`holds_for` is the other legitimate use of time in a test: something that must *not* happen,
checked by sampling a condition over a span. The caller says, in a comment, why that span is long
enough for the thing to have happened if it were going to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 30.0  # seconds; generous for a loaded 2-core CI machine
INTERVAL = 0.05  # seconds between two looks
_SHOWN = 2000  # characters of the last value kept in a failure message


class _Nothing:
    def __repr__(self) -> str:
        return "nothing (the probe never returned)"


NOTHING = _Nothing()


def wait_for(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (),
    diagnose: Callable[[], object] | None = None,
) -> T:
    """Call `probe` every `interval` seconds until it returns a truthy value, and return it.

    Exceptions of the `ignoring` types count as "not yet" (e.g. a server still starting);
    any other exception propagates at once. After `timeout` seconds: AssertionError naming
    `what`, the last value or exception seen, and `diagnose()`'s text.
    """
    deadline = time.monotonic() + timeout
    last: object = NOTHING
    while True:
        try:
            value = probe()
        except ignoring as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}; "
                f"last seen: {_shown(last)}{_diagnosis(diagnose)}"
            )
        time.sleep(interval)


def holds_for(
    what: str,
    condition: Callable[[], object],
    seconds: float,
    *,
    interval: float = INTERVAL,
    diagnose: Callable[[], object] | None = None,
) -> None:
    """Assert that `condition()` stays truthy for `seconds`, sampled every `interval` seconds
    (first at once, last at the end of the span). `what` states the invariant."""
    began = time.monotonic()
    deadline = began + seconds
    while True:
        now = time.monotonic()
        value = condition()
        if not value:
            raise AssertionError(
                f"no longer true after {now - began:.1f}s of {seconds:g}s: {what}; "
                f"got {_shown(value)}{_diagnosis(diagnose)}"
            )
        if now >= deadline:
            return
        time.sleep(min(interval, max(0.0, deadline - now)))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}… ({len(text)} characters)"


def _diagnosis(diagnose: Callable[[], object] | None) -> str:
    if diagnose is None:
        return ""
    try:
        return f"\n{diagnose()}"
    except Exception as exc:  # a broken diagnosis must not hide the timeout itself
        return f"\n(diagnosis failed: {exc!r})"
