"""QEMU's threads yield to the control path (kvd.launcher.virt.priority), on a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kvd.launcher.virt import priority
from tests.launcher.harness import autogroup, nices
from tests.support.waiting import wait_for

THREADS = 4


def test_every_thread_and_the_threads_started_later_get_the_guest_nice() -> None:
    # a process with several threads, which starts one more when told (a line on stdin)
    program = (
        "import sys, threading\n"
        "ev = threading.Event()\n"
        f"for _ in range({THREADS}): threading.Thread(target=ev.wait, daemon=True).start()\n"
        "print('up', flush=True)\n"
        "sys.stdin.readline()\n"
        "threading.Thread(target=ev.wait, daemon=True).start()\n"
        "print('more', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "up\n"
        before = nices(proc.pid)
        assert len(before) == THREADS + 1 and set(before.values()) == {
            os.getpriority(os.PRIO_PROCESS, 0)
        }
        assert priority.lower(proc.pid) == THREADS + 1
        assert set(nices(proc.pid).values()) == {priority.GUEST_NICE}
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "more\n"
        after = nices(proc.pid)
        assert len(after) == THREADS + 2
        assert set(after.values()) == {priority.GUEST_NICE}
        assert os.getpriority(os.PRIO_PROCESS, 0) != priority.GUEST_NICE  # ours is untouched
    finally:
        proc.kill()
        proc.wait()


def test_a_process_already_gone_is_no_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    wait_for("the pid to be reaped", lambda: not Path(f"/proc/{proc.pid}").exists())
    assert priority.lower(proc.pid) == 0


def test_a_guest_in_a_session_of_its_own_gets_its_group_lowered_and_ours_is_left_alone() -> None:
    # libvirt starts QEMU in a new session: an autogroup of its own, which CFS weighs by the
    # group's nice, not its threads'
    own = subprocess.Popen(["sleep", "60"], start_new_session=True)
    shared = subprocess.Popen(["sleep", "60"])
    try:
        assert autogroup(own.pid)[0] != autogroup("self")[0]
        ours = autogroup("self")
        priority.lower(own.pid)
        priority.lower(shared.pid)
        assert autogroup(own.pid)[1] == priority.GUEST_NICE
        assert autogroup("self") == ours  # the launcher's own group keeps its weight
        assert autogroup(shared.pid) == ours
    finally:
        own.kill()
        shared.kill()
        own.wait()
        shared.wait()
