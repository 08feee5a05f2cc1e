"""Which process a pid names: a pid plus its start time, so a reused pid is never mistaken.

The kernel reuses pids; `/proc/<pid>/stat` field 22 (start time, in clock ticks since boot) does
not repeat for one pid within a boot, so the pair identifies one process for as long as the node
state lives (the state directory does not survive a reboot's processes anyway). A zombie counts as
gone: it has exited, only its status is left for its parent.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from kvd import sandbox


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start: int

    @classmethod
    def parse(cls, stat: str) -> ProcessId:
        """From a `/proc/<pid>/stat` line; the command name in parentheses may hold anything."""
        pid, _, rest = stat.partition(" (")
        fields = rest.rpartition(") ")[2].split()
        # fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
        return cls(int(pid), int(fields[19]))

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The process `pid` names now, if any."""
        stat = _stat(pid)
        return None if stat is None else cls.parse(stat)

    def alive(self) -> bool:
        stat = _stat(self.pid)
        if stat is None:
            return False
        state = stat.rpartition(") ")[2][:1]
        return state not in ("Z", "X") and ProcessId.parse(stat) == self

    def signal(self, signum: signal.Signals) -> bool:
        """Send `signum` if this very process still runs; whether it was sent."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True


def tagged(namespace: str, tag: str) -> list[int]:
    """Processes in mount namespace `namespace` whose mounts include one named `tag`.

    The id alone is not enough: the kernel hands a dead namespace's number to a new one, so
    only the tag (a random mount source name, unique per container attempt) proves it is ours.
    """
    return [pid for pid in sandbox.pids_in(namespace) if _has_mount(pid, tag)]


def kill_tagged(namespace: str, tag: str, *, timeout: float) -> None:
    """SIGKILL every process `tagged` finds until none is left."""
    try:
        sandbox.kill_until_gone(lambda: tagged(namespace, tag), timeout=timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc} in {namespace}") from None


def _has_mount(pid: int, tag: str) -> bool:
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return f" {tag} " in f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _stat(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
