"""What the kernel's scheduler holds for a process, read from /proc: its threads' nice values and
its autogroup (kvd/priority.py sets both)."""

from __future__ import annotations

from pathlib import Path


def nices(pid: int | str) -> dict[int, int]:
    """Each thread's nice value, from /proc (field 19 of stat)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        out[int(task.name)] = int(stat[stat.rindex(")") + 2 :].split()[16])
    return out


def autogroup(pid: int | str) -> tuple[str, int] | None:
    """(group, nice) from /proc/<pid>/autogroup: '/autogroup-123 nice 0'. None when the file is
    empty: the task is in the default group, whose session is init's (a process a container's or
    a sandbox's init starts without a session of its own, as CI's test runner)."""
    text = Path(f"/proc/{pid}/autogroup").read_text().split()
    if not text:
        return None
    group, _, nice = text
    return group, int(nice)
