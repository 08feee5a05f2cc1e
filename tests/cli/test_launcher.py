"""`kvd launcher` as its pod runs it: --simulate-crash (KubeVirt's fail-fast test hook) exits
with an error before anything starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.local.node.conftest import KVD


def test_a_simulated_crash_exits_1_at_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [KVD, "launcher", "--namespace", "ns", "--name", "n", "--uid", "u",
         "--run-dir", str(run_dir), "--simulate-crash"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "simulated crash" in done.stderr
    assert not run_dir.exists()  # nothing was started or left behind


def test_a_bad_pvc_capacity_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [KVD, "launcher", "--namespace", "ns", "--name", "n", "--uid", "u",
         "--run-dir", str(tmp_path / "run"), "--pvc-capacity", "data=lots", "--simulate-crash"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--pvc-capacity: 'data=lots'" in done.stderr
