"""The control path outweighs the guests, and a guest weighs what any other process on the node
does.

Under TCG a booting guest's vCPU threads run flat out. Twenty of them on two cores used to leave a
launcher that was still starting (Python, libvirtd, QEMU's own start) one share in twenty, so
each later VMI waited for the boots before it: creation → Running grew by seconds per VMI. A
kubelet gives each container a CPU weight by its request; here the part that can wait is the
guest, and the parts that must not are busy only in short bursts: a launcher and its libvirtd
while they start and when asked for something, the handler, the local node and API server.

So each of those raises itself to `CONTROL_NICE` (CFS weight 9548 against 1024 at nice 0) before
any other thread starts (`raise_control`): its threads and children inherit it. The launcher's
libvirtd would pass it on to QEMU, so the launcher puts QEMU's threads back to `GUEST_NICE` (0)
while the domain is still paused; the local node gives its containers' programs 0 back the same
way. The guest is never lowered below the node's other processes: a lowered guest (nice 10 was
tried) got 110/1024 of a share against anything else busy, and on a machine with three busy
processes on two cores did not get past its kernel's timer check in two minutes.

Nice is per thread on Linux: every thread a process has when it is changed is set, and threads
created later inherit the nice of their creator. With the kernel's autogroup scheduling
(`/proc/sys/kernel/sched_autogroup_enabled`, on in most distribution kernels) a thread's nice only
counts within its session's group, and CFS shares the CPU between groups by the group's own nice:
so the raised process's own group is raised too, and the launcher raises its libvirtd's (a
session of its own); QEMU's new session starts a group at nice 0. A task in the default group
(init's session; `/proc/<pid>/autogroup` empty, as for a process a container's init starts
without a session of its own) shares that group with the whole machine: it is left alone.
Raising needs CAP_SYS_NICE (a launcher or handler in a privileged container, the local node and
API server as root); without it nothing changes and the daemon logs why once. The controller,
non-root and without the capability, stays at 0.
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


def as_usual(nice: str = "nice") -> list[str]:
    """The argv prefix that runs a command at nice 0 when the calling thread was raised (`nice
    -n` adds to the caller's nice): for a raised daemon's children that are not its control
    path, such as the local node's containers."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    return [nice, "-n", str(-own)] if own else []


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
