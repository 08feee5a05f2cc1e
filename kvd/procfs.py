"""Which process a pid names, and whether it still runs: `/proc/<pid>/stat`, read in one place.

The kernel reuses pids. Field 22 of the stat line, the start time in clock ticks since boot, does
not repeat for one pid within a boot, so (pid, start time) names one process for as long as a
record of it can matter (no process survives a reboot). The command name, field 2, stands in
parentheses and may itself hold spaces and parentheses (a process sets it at will): the fields
that follow are read after the last `)`.

A zombie (state Z, or X while the kernel tears it down) has exited; only its exit status is left
for its parent to collect. Its start time still names it, so a recorded (pid, start time) is still
that process and not a reused pid: `start_time` answers for zombies too. Whether an exited process
counts as alive is the caller's business; `running` gives the usual answer (no: there is nothing
left to signal or wait for), and `Stat.ended` lets a caller decide otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ENDED_STATES: Final = frozenset({"Z", "X"})
_START_TIME: Final = 19  # field 22, counted from field 3 (the state), the first after the name


@dataclass(frozen=True)
class Stat:
    """The fields of a stat line kvd reads."""

    pid: int
    comm: str  # the command name, without its parentheses
    state: str  # R, S, D, T, Z, X, ...
    start_time: int  # clock ticks since boot

    @property
    def ended(self) -> bool:
        """Exited, only not yet reaped by its parent (a zombie)."""
        return self.state in ENDED_STATES


def parse(line: str) -> Stat:
    """A `/proc/<pid>/stat` line; ValueError if it is not one."""
    head, closing, tail = line.rpartition(")")
    pid, opening, comm = head.partition(" (")
    fields = tail.split()
    if not (closing and opening and pid.isdigit() and len(fields) > _START_TIME):
        raise ValueError(f"not a /proc/<pid>/stat line: {line[:120]!r}")
    try:
        start_time = int(fields[_START_TIME])
    except ValueError:
        raise ValueError(f"not a /proc/<pid>/stat line: {line[:120]!r}") from None
    return Stat(int(pid), comm, fields[0], start_time)


def read(pid: int) -> Stat | None:
    """What `/proc/<pid>/stat` says now; None when there is no process `pid` (a reaped one)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it went while being read
        return None
    # the command name is bytes a process chose, not necessarily UTF-8
    return parse(data.decode(errors="replace"))


def start_time(pid: int) -> int | None:
    """The start time of the process `pid` names now, zombie or not; None when there is none."""
    stat = read(pid)
    return None if stat is None else stat.start_time


def running(pid: int, started: int) -> bool:
    """Whether the process `pid` that started at `started` still exists and has not exited."""
    stat = read(pid)
    return stat is not None and stat.start_time == started and not stat.ended
