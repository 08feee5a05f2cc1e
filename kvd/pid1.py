"""A command that finds itself PID 1 (a container's entry point) splits into an init and itself.

In a pod, each container's command is PID 1 of the container's own pid namespace, and PID 1 has
duties nothing else has: every process orphaned in the namespace becomes its child, and only its
wait() lets them go. The launcher's QEMU is such an orphan (libvirtd daemonizes it); when it
exits unreaped it stays a zombie, libvirt still sees its pid, and destroying the domain never
completes, so the launcher hangs until the pod is killed. (KubeVirt's launcher pods run
virt-launcher-monitor as PID 1 for the same reason. kvd's local node never showed it: its pods
share the host's pid namespace.)

`become_init_if_pid1` forks: the child returns and carries on as the command, with an ordinary
pid, so its own children are its own to wait for; the parent stays PID 1, reaps every process
that ends up its child, forwards the signals a kubelet or a user sends to the child, and exits
with the child's status (128 + N when a signal N ended it, as a shell reports it).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import NoReturn

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def become_init_if_pid1() -> None:
    """Return at once unless this process is PID 1; if it is, return only in a forked child."""
    if os.getpid() != 1:
        return
    child = os.fork()
    if child == 0:
        return
    _init(child)


def _init(child: int) -> NoReturn:
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _forward(child, signum))
    while True:
        try:
            pid, status = os.wait()  # retried after a signal's handler ran (PEP 475)
        except ChildProcessError:  # cannot happen while the child lives; nothing left to do
            os._exit(1)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def _forward(child: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it just ended; wait() reports it next
        os.kill(child, signum)
