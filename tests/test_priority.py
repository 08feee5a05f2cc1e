"""The launcher outweighs its guest, and the guest no other process (kvd.priority),
on real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvd import priority
from tests.support.sched import autogroup, nices
from tests.support.waiting import wait_for

THREADS = 4
SOME_NICE = 5


def test_every_thread_and_the_threads_started_later_get_the_nice() -> None:
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
        assert priority.set_threads(proc.pid, SOME_NICE) == THREADS + 1
        assert set(nices(proc.pid).values()) == {SOME_NICE}
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "more\n"
        after = nices(proc.pid)
        assert len(after) == THREADS + 2
        assert set(after.values()) == {SOME_NICE}
        assert os.getpriority(os.PRIO_PROCESS, 0) != SOME_NICE  # ours is untouched
    finally:
        proc.kill()
        proc.wait()


def test_a_process_already_gone_is_no_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    wait_for("the pid to be reaped", lambda: not Path(f"/proc/{proc.pid}").exists())
    assert priority.set_threads(proc.pid) == 0
    assert not priority.set_group(proc.pid, SOME_NICE)


# Run as the launcher is: in a session of its own (a container's), raise_control before any
# thread; then a thread, and a child in a session of its own (libvirtd) whose group is set to
# ours. Prints whether it was refused and the child's pid; the test reads the rest from /proc.
RAISED = """
import json, os, subprocess, sys, threading
from kvd import priority
refused = priority.raise_control()
done = threading.Event()
thread = threading.Thread(target=done.wait); thread.start()
child = subprocess.Popen(["sleep", "60"], start_new_session=True)
priority.set_group(child.pid, os.getpriority(os.PRIO_PROCESS, 0))
print(json.dumps({"refused": refused, "child": child.pid}), flush=True)
sys.stdin.readline()
done.set(); child.kill(); child.wait()
"""


def test_the_launcher_its_threads_and_its_daemons_group_outweigh_a_guest() -> None:
    before = autogroup("self")
    proc = subprocess.Popen(
        [sys.executable, "-c", RAISED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        seen = json.loads(proc.stdout.readline())
        assert seen["refused"] is None  # root here: CAP_SYS_NICE
        threads = nices(proc.pid)
        assert set(threads.values()) == {priority.CONTROL_NICE} and len(threads) == 2
        ours = autogroup(proc.pid)
        assert ours is not None and ours[1] == priority.CONTROL_NICE  # its session's group
        child = autogroup(seen["child"])
        assert child is not None and child[0] != ours[0]
        assert child[1] == priority.CONTROL_NICE  # libvirtd's own session's group
        assert set(nices(seen["child"]).values()) == {priority.CONTROL_NICE}  # inherited
        assert autogroup("self") == before  # the test's own group is untouched
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_without_cap_sys_nice_nothing_changes_and_the_reason_is_returned() -> None:
    program = (
        "import json, os\n"
        "from kvd import priority\n"
        "print(json.dumps([priority.raise_control(), os.getpriority(os.PRIO_PROCESS, 0)]))\n"
    )
    # setpriv drops every capability, as an unprivileged container's launcher has none of it
    done = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
    )
    refused, nice = json.loads(done.stdout)
    assert refused and "denied" in refused.lower()
    assert nice == 0


def _fake_proc(root: Path, pid: int, group: str) -> Path:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "autogroup").write_text(group)
    return root


@pytest.mark.parametrize(
    ("group", "written"),
    [
        pytest.param("/autogroup-7 nice 0\n", True, id="a-session-of-its-own"),
        # init's session: shared with the whole machine, never raised nor lowered
        pytest.param("", False, id="the-default-group"),
    ],
)
def test_only_a_group_of_its_own_is_set(tmp_path: Path, group: str, written: bool) -> None:
    proc = _fake_proc(tmp_path, 4242, group)
    assert priority.set_group(4242, SOME_NICE, proc=proc) == written
    assert (proc / "4242" / "autogroup").read_text() == (str(SOME_NICE) if written else group)
