"""Which process a pid names: a pid plus its start time (`kvd.procfs`), so a reused pid is never
mistaken, kept in the node's state for as long as the process may run. A zombie is not alive: it
has exited, only its status is left for its parent, and there is nothing left to signal.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from kvd import procfs, sandbox


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start: int

    @classmethod
    def parse(cls, stat: str) -> ProcessId:
        """From a `/proc/<pid>/stat` line."""
        parsed = procfs.parse(stat)
        return cls(parsed.pid, parsed.start_time)

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The process `pid` names now (a zombie included), if any."""
        start = procfs.start_time(pid)
        return None if start is None else cls(pid, start)

    def alive(self) -> bool:
        return procfs.running(self.pid, self.start)

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
