"""kvd.sandbox: private libvirt directories per process, as a container would have them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kvd import sandbox

pytestmark = [
    pytest.mark.integration,  # runs programs in sandboxes: process trees in mount namespaces
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="a sandbox needs root"),
]

# Writes its name into /run/libvirt, says so, waits for a line on stdin, then lists the directory:
# with both processes paused between the two steps, each would see the other's file if it could.
WRITE_THEN_LIST = 'echo "$1" > /run/libvirt/"$1"; echo written; read _; ls /run/libvirt'


def host_view(path: Path) -> list[str] | None:
    return sorted(os.listdir(path)) if path.exists() else None


def start(argv: list[str], spec: sandbox.SandboxSpec) -> subprocess.Popen[str]:
    return sandbox.popen(
        argv, spec, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_sandboxes_never_see_each_others_libvirt_files() -> None:
    before = host_view(Path("/run/libvirt"))
    spec = sandbox.SandboxSpec()
    a = start(["sh", "-c", WRITE_THEN_LIST, "sh", "a"], spec)
    b = start(["sh", "-c", WRITE_THEN_LIST, "sh", "b"], spec)
    try:
        assert a.stdout is not None and b.stdout is not None
        assert a.stdout.readline() == "written\n"
        assert b.stdout.readline() == "written\n"  # both files exist now, in their own tmpfs
        out_a, err_a = a.communicate("\n", timeout=10)
        out_b, err_b = b.communicate("\n", timeout=10)
    finally:
        for p in (a, b):
            p.kill()
            p.wait()
    assert (out_a.split(), a.returncode) == (["a"], 0), err_a
    assert (out_b.split(), b.returncode) == (["b"], 0), err_b
    assert host_view(Path("/run/libvirt")) == before


def test_the_program_exit_status_comes_back() -> None:
    process = start(["sh", "-c", "exit 7"], sandbox.SandboxSpec())
    assert process.wait(10) == 7


def test_var_run_is_the_same_private_directory_as_run() -> None:
    # Debian's /var/run is a symlink to /run: one tmpfs, not two stacked ones.
    script = "echo x > /var/run/libvirt/f && cat /run/libvirt/f && grep -c ' /run/libvirt ' " + (
        "/proc/self/mountinfo"
    )
    result = subprocess.run(
        sandbox.command(["sh", "-c", script], sandbox.SandboxSpec()),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert (result.returncode, result.stdout.split()) == (0, ["x", "1"]), result.stderr


def test_a_bind_shares_a_host_directory_and_a_tmpfs_does_not(tmp_path: Path) -> None:
    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.mkdir()
    private.mkdir()
    # The bind sits inside the tmpfs: it is mounted after it, so the tmpfs does not hide it.
    spec = sandbox.SandboxSpec(tmpfs=(private,), binds={private / "bound": shared})
    script = f"echo in > {private}/bound/f && echo in > {private}/f"
    process = start(["sh", "-c", script], spec)
    assert process.wait(10) == 0, process.communicate()[1]
    assert (shared / "f").read_text() == "in\n"
    assert list(private.iterdir()) == []


def test_a_failed_mount_ends_with_status_125_before_the_program(tmp_path: Path) -> None:
    # A file where the tmpfs should go: mkdir -p fails, and the program never runs.
    blocker = tmp_path / "file"
    blocker.write_text("")
    process = start(["sh", "-c", "echo ran"], sandbox.SandboxSpec(tmpfs=(blocker / "sub",)))
    out, err = process.communicate(timeout=10)
    assert (process.returncode, out) == (sandbox.SETUP_FAILED, "")
    assert "tmpfs on" in err


def test_kill_all_ends_what_the_program_left_behind() -> None:
    # The program starts a background sleeper and exits; the sleeper is in the namespace still.
    process = start(["sh", "-c", "sleep 300 & echo $!; read _"], sandbox.SandboxSpec())
    namespace = sandbox.wait_for_namespace(process)
    assert process.stdout is not None
    sleeper = int(process.stdout.readline())
    assert sleeper in sandbox.pids_in(namespace)
    killed = sandbox.kill_all(namespace)
    assert set(killed) == {process.pid, sleeper}
    assert process.wait(10) == -9
    assert sandbox.pids_in(namespace) == []


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(sandbox.SandboxSpec(tmpfs=(Path("relative"),)), id="relative-tmpfs"),
        pytest.param(sandbox.SandboxSpec(tmpfs=(Path("/"),)), id="root-tmpfs"),
        pytest.param(
            sandbox.SandboxSpec(binds={Path("/run/x"): Path("/nonexistent/kvd")}),
            id="missing-bind-source",
        ),
    ],
)
def test_a_bad_spec_is_refused_before_anything_runs(spec: sandbox.SandboxSpec) -> None:
    with pytest.raises(sandbox.SandboxError):
        sandbox.command(["true"], spec)


def test_kill_all_refuses_the_callers_own_namespace() -> None:
    with pytest.raises(sandbox.SandboxError):
        sandbox.kill_all(sandbox.mount_namespace(os.getpid()))
