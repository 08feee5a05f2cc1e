"""A fake clock for code that takes one (`clock: Callable[[], float]`): time moves only when the
test says so, so a test of delays, expiries or durations never sleeps and never flakes."""

from __future__ import annotations


class FakeClock:
    """Call it for the current time; `advance` moves it (or set `now`)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds}s)")
        self.now += seconds
