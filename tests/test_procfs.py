"""/proc/<pid>/stat: parsed from synthetic lines (names that look like fields, states), then read
from a real child process while it runs, once it is a zombie, and once it is reaped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kvd import procfs


def line(pid: int, comm: str, state: str = "S", start: int = 123456) -> str:
    """A stat line as Linux 6.x writes it: 52 fields, the start time the 22nd."""
    fields = [state, "1", str(pid), str(pid), "0", "-1", "4194560", *["0"] * 12, "20", "0"]
    fields = [*fields[:19], str(start), *["0"] * 30]
    return f"{pid} ({comm}) {' '.join(fields)}\n"


def test_the_synthetic_line_puts_the_start_time_in_field_22() -> None:
    assert line(7, "x", start=99).split()[21] == "99"


@pytest.mark.parametrize(
    ("comm", "state"),
    [
        pytest.param("sleep", "S", id="plain"),
        pytest.param("kvd launcher", "R", id="space"),
        pytest.param("a) (b", "S", id="parentheses"),
        pytest.param("x) Z 1 2 3", "S", id="looks-like-fields"),
        pytest.param(")", "D", id="only-a-parenthesis"),
        pytest.param("", "S", id="empty"),
        pytest.param("qemu-system-x86", "Z", id="zombie"),
        pytest.param("(dead)", "X", id="dead"),
    ],
)
def test_parse(comm: str, state: str) -> None:
    stat = procfs.parse(line(4242, comm, state, start=987654321))
    assert stat == procfs.Stat(pid=4242, comm=comm, state=state, start_time=987654321)


@pytest.mark.parametrize(
    ("state", "ended"),
    [
        ("R", False),
        ("S", False),
        ("D", False),
        ("T", False),
        ("I", False),
        ("Z", True),
        ("X", True),
    ],
)
def test_only_zombies_have_ended(state: str, ended: bool) -> None:
    assert procfs.parse(line(1, "p", state)).ended is ended


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param("12 (name S 1 2", id="unclosed-name"),
        pytest.param("12 (name) S 1 2 3", id="truncated"),
        pytest.param("x (name) " + line(1, "p").split(") ", 1)[1], id="pid-not-a-number"),
        pytest.param(line(1, "p").replace(" 123456 ", " soon "), id="start-not-a-number"),
    ],
)
def test_parse_refuses_what_is_not_a_stat_line(text: str) -> None:
    with pytest.raises(ValueError, match="not a /proc/<pid>/stat line"):
        procfs.parse(text)


@pytest.mark.parametrize("missing", [0, -1, "pid_max"])
def test_a_pid_that_names_no_process(missing: int | str) -> None:
    if missing == "pid_max":  # pids stay below it
        with open("/proc/sys/kernel/pid_max") as f:
            missing = int(f.read())
    assert isinstance(missing, int)
    assert procfs.read(missing) is None
    assert procfs.start_time(missing) is None
    assert not procfs.running(missing, 1)


# --- a real process: running, zombie, reaped ------------------------------------------------

# The child names itself like a trap for a naive parser (15 bytes at most, and not UTF-8), says
# so, and exits when its stdin closes.
CHILD = """
import sys
with open("/proc/self/comm", "wb") as f:
    f.write(b"k) (Z 1 \\xff")
print("named", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"named\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_running_process(child: subprocess.Popen[bytes]) -> None:
    stat = procfs.read(child.pid)
    assert stat is not None
    assert (stat.pid, stat.comm, stat.ended) == (child.pid, "k) (Z 1 \ufffd", False)
    assert procfs.start_time(child.pid) == stat.start_time
    assert procfs.running(child.pid, stat.start_time)
    assert not procfs.running(child.pid, stat.start_time + 1)  # same pid, another process
    assert stat.start_time >= _own_start_time()  # field 22 is a start time: its parent's is earlier


def test_a_zombie_keeps_its_identity_but_does_not_run(child: subprocess.Popen[bytes]) -> None:
    started = procfs.start_time(child.pid)
    assert started is not None
    assert child.stdin is not None
    child.stdin.close()
    # wait until it has exited, but leave it unreaped: a zombie
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    stat = procfs.read(child.pid)
    assert stat is not None and stat.state == "Z" and stat.ended
    assert procfs.start_time(child.pid) == started
    assert not procfs.running(child.pid, started)


def test_a_reaped_process_is_gone(child: subprocess.Popen[bytes]) -> None:
    started = procfs.start_time(child.pid)
    assert started is not None
    assert child.stdin is not None
    child.stdin.close()
    assert child.wait(timeout=30) == 0
    assert procfs.read(child.pid) is None
    assert procfs.start_time(child.pid) is None
    assert not procfs.running(child.pid, started)


def _own_start_time() -> int:
    own = procfs.start_time(os.getpid())
    assert own is not None
    return own
