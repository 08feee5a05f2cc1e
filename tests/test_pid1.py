"""kvd.pid1 in a real pid namespace (unshare --pid --fork, as root): the command runs as a child
of an init that reaps orphans, passes signals on and exits with the command's status."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # processes in their own pid namespace

COMMAND = """
import os, signal, subprocess, sys, time
from pathlib import Path
from kvd import pid1
pid1.become_init_if_pid1()
print("pid", os.getpid(), "parent", os.getppid(), flush=True)
# an orphan: sh starts sleep in the background and exits, so sleep is handed to PID 1
orphan = int(subprocess.run(["sh", "-c", "sleep 0.3 & echo $!"], capture_output=True,
                            text=True, check=True).stdout)
deadline = time.monotonic() + 30
while Path(f"/proc/{orphan}").exists():  # a zombie nobody reaps would stay listed
    if time.monotonic() > deadline:
        state = Path(f"/proc/{orphan}/stat").read_text().split()[2]
        print("orphan not reaped, state", state, flush=True)
        sys.exit(9)
    time.sleep(0.05)
print("orphan reaped", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(int(sys.argv[1])))
print("ready", flush=True)
time.sleep(60)
sys.exit(8)
"""


def _unshare() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root for a pid namespace (CI runs as root)")
    binary = shutil.which("unshare")
    if binary is None:
        pytest.fail("unshare not found: apt-get install util-linux", pytrace=False)
    return binary


def test_a_command_that_is_pid1_reaps_orphans_forwards_signals_and_keeps_its_status(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    repo = Path(__file__).resolve().parents[1]
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                _unshare(),
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                sys.executable,
                "-c",
                COMMAND,
                "5",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=repo,
        )
    try:
        wait_for(
            "the command to be ready",
            lambda: "ready" in out.read_text() or proc.poll() is not None,
            timeout=60,
        )
        lines = out.read_text().splitlines()
        assert lines[:3] == ["pid 2 parent 1", "orphan reaped", "ready"], lines
        init = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        os.kill(init, 15)  # as a kubelet stops a container: SIGTERM to its PID 1
        assert proc.wait(timeout=60) == 5, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_command_that_is_not_pid1_is_left_as_it_is() -> None:
    from kvd import pid1  # noqa: PLC0415

    before = os.getpid()
    pid1.become_init_if_pid1()
    assert os.getpid() == before
