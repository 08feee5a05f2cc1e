"""The control path outweighs the guest inside a launcher pod, and the guest is left as heavy as
any other process on the node.

Under TCG a booting guest's vCPU threads run flat out. Twenty of them on two cores used to leave a
launcher that was still starting (Python, libvirtd, QEMU's own start) one share in twenty, so
each later VMI waited for the boots before it: creation → Running grew by seconds per VMI. A
kubelet gives each container a CPU weight by its request; within the launcher pod, the guest is
the part that can wait for the launcher and its libvirtd, which are busy only while they start and
when asked for something.

So the launcher raises itself to `CONTROL_NICE` (CFS weight 9548 against 1024 at nice 0) before
any other thread starts: its threads and its libvirtd inherit it, and libvirtd's QEMU would too,
so QEMU's threads are put back to `GUEST_NICE` (0) while the domain is still paused. The guest is
never lowered below the node's other processes: a lowered guest (nice 10 was tried) got 110/1024
of a share against anything else busy, and on a machine with three busy processes on two cores
did not get past its kernel's timer check in two minutes.

Nice is per thread on Linux: every thread a process has when it is changed is set, and threads
created later inherit the nice of their creator. With the kernel's autogroup scheduling
(`/proc/sys/kernel/sched_autogroup_enabled`, on in most distribution kernels) a thread's nice only
counts within its session's group, and CFS shares the CPU between groups by the group's own nice.
libvirtd runs in a session of its own (the launcher starts it so) and starts QEMU in another, so
the launcher's group and libvirtd's are raised too; QEMU's new group starts at nice 0. A task in
the default group (init's session; `/proc/<pid>/autogroup` empty, as for a process a container's
init starts without a session of its own) shares that group with the whole machine: it is left
alone. Raising needs CAP_SYS_NICE; without it nothing changes and the launcher says so once.
"""

from __future__ import annotations

import os
from pathlib import Path

CONTROL_NICE = -10
GUEST_NICE = 0


def raise_control(*, proc: Path = Path("/proc")) -> str | None:
    """This thread and our session's autogroup get `CONTROL_NICE`; call it before any other
    thread or child starts, so they inherit it. None when done, else why not (for the log:
    the caller's logging may not be set up yet)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, CONTROL_NICE)  # this thread: Linux nice is per thread
    except PermissionError as exc:  # no CAP_SYS_NICE: the pod keeps equal weights
        return str(exc)
    set_group(os.getpid(), CONTROL_NICE, proc=proc)
    return None


def set_threads(pid: int, nice: int = GUEST_NICE, *, proc: Path = Path("/proc")) -> int:
    """Set `nice` on every thread of process `pid`; returns how many were set. A thread that
    ends meanwhile is skipped; the process being gone is not an error (the domain may have
    died at once: its end is reported elsewhere); no permission leaves the rest as they are."""
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
        except PermissionError:
            return done
        done += 1
    return done


def set_group(pid: int, nice: int, *, proc: Path = Path("/proc")) -> bool:
    """Set the nice of `pid`'s autogroup unless it is the default group, which the whole machine
    shares; whether it did."""
    path = proc / str(pid) / "autogroup"
    try:
        if not path.read_text().split():
            return False  # the default group, or not scheduled by autogroup at all
        path.write_text(str(nice))
    except OSError:  # no autogroups (kernel option off), the process is gone, or no permission
        return False
    return True
