"""The capability seeding step (scripts/setup runs it) against a launcher's real libvirtd: the entry
it makes must start the launcher's daemon seeded, with libvirt keeping the files (no re-probe)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvd.launcher import capseed
from tests.launcher.test_libvirtd import Launcher


def run_capseed(store: Path, cpu: int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kvd.launcher.capseed", "--store", str(store), "--cpus", str(cpu)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def snapshot(store: Path) -> dict[str, tuple[str, dict[str, int]]]:
    """Each entry's published directory and its files' mtimes: what a re-probe would replace."""
    return {
        link.name: (os.readlink(link), {f.name: f.stat().st_mtime_ns for f in link.iterdir()})
        for link in store.iterdir()
        if link.is_symlink()
    }


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.skipif(os.geteuid() != 0, reason="a sandbox needs root")
def test_the_seeded_entry_starts_a_launchers_libvirtd_without_a_probe(tmp_path: Path) -> None:
    store = tmp_path / "caps"
    cpu = min(os.sched_getaffinity(0))  # the CPU a launcher started from here pins libvirtd to
    out = run_capseed(store, cpu)
    assert f"cpu {cpu}: probed QEMU in" in out, out
    made = snapshot(store)
    (key,) = made
    assert key in out
    files = made[key][1]
    assert "identity.json" in files and any(name.endswith(".xml") for name in files), files

    launcher = Launcher(tmp_path / "l", store)
    try:
        ready = launcher.reply(timeout=120)
        assert ready["event"] == "ready", launcher.logs()
        assert ready["seeded"] is True, launcher.logs()
        assert launcher.ask("stop")["stopped"]
    finally:
        launcher.close()
    logs = launcher.logs()
    assert f'"key": "{key}"' in logs and '"event": "caps_seeded"' in logs
    assert '"event": "caps_stored"' not in logs
    assert snapshot(store) == made, "libvirt rejected the seed and the launcher replaced it"

    again = run_capseed(store, cpu)  # as scripts/setup re-runs it: checked, not probed again
    assert f"cpu {cpu}: up to date" in again, again
    assert snapshot(store) == made


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        pytest.param("0", [0], id="one"),
        pytest.param("0,2-3", [0, 2, 3], id="list-and-range"),
        pytest.param("3,1-2,2", [1, 2, 3], id="unsorted-overlapping"),
        pytest.param("all", sorted(os.sched_getaffinity(0)), id="all"),
    ],
)
def test_cpu_lists(text: str, cpus: list[int]) -> None:
    assert capseed.parse_cpus(text) == cpus
