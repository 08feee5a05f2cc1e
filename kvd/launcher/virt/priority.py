"""The guest's CPU yields to the control path: QEMU runs at a lower scheduling priority.

Under TCG a booting guest's vCPU threads run flat out. Twenty of them on two cores used to leave a
launcher that was still starting (Python, libvirtd, QEMU's own start) one share in twenty, so
each later VMI waited for the boots before it: creation → Running grew by seconds per VMI. A
kubelet gives each container a CPU weight by its request; within the launcher pod's `compute`
container, QEMU is the part that can wait. Its threads get `GUEST_NICE` (CFS weight 110 against
1024 at nice 0): an idle machine still gives the guest every cycle, a busy one serves the
launchers, libvirtd and kvd's daemons first.

Nice is per thread on Linux: every thread QEMU has when it is started paused (the vCPU threads
among them) is set, and threads it creates later inherit the nice of their creator. With the
kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, on in most distribution
kernels and on this machine) a thread's nice only counts within its session's group, and CFS
shares the CPU between groups by the group's own nice: libvirt starts QEMU in a session of its
own, so each guest was one group weighing as much as a starting launcher, whatever its threads'
nice. So QEMU's group gets `GUEST_NICE` too — only when it is not our own group.
"""

from __future__ import annotations

import os
from pathlib import Path

from kvd import logs

log = logs.get_logger(__name__)

GUEST_NICE = 10


def lower(pid: int, nice: int = GUEST_NICE, *, proc: Path = Path("/proc")) -> int:
    """Set `nice` on every thread of process `pid`; returns how many were set. A thread that
    ends meanwhile is skipped; the process being gone is not an error (the domain may have
    died at once: its end is reported elsewhere)."""
    try:
        tids = [int(t) for t in os.listdir(proc / str(pid) / "task")]
    except FileNotFoundError:
        return 0
    done = 0
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            continue
        except PermissionError as exc:  # no CAP_SYS_NICE: the guest keeps its share
            log.warning("guest_priority_unchanged", pid=pid, error=str(exc))
            return done
        done += 1
    group = _lower_group(pid, nice, proc=proc)
    log.info("guest_priority_lowered", pid=pid, threads=done, nice=nice, autogroup=group)
    return done


def _lower_group(pid: int, nice: int, *, proc: Path) -> bool:
    """Set the nice of `pid`'s autogroup when it has one apart from ours; whether it did."""
    try:
        theirs = (proc / str(pid) / "autogroup").read_text().split()[0]
        ours = (proc / "self" / "autogroup").read_text().split()[0]
        if theirs == ours:
            return False  # ours too: lowering it would slow this launcher down
        (proc / str(pid) / "autogroup").write_text(str(nice))
    except (OSError, IndexError):  # no autogroups (kernel option off), or the process is gone
        return False
    return True
