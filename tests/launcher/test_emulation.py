"""kvm_usable: a vCPU must run guest code at hardware speed, not merely exist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvd.launcher import app, emulation
from tests.launcher.conftest import QEMU


def test_no_device_means_emulate(tmp_path: Path) -> None:
    result = emulation.check_kvm(tmp_path / "kvm")
    assert not result.usable
    assert "does not exist" in result.reason


def test_a_device_that_is_not_kvm_means_emulate() -> None:
    result = emulation.check_kvm(Path("/dev/null"))
    assert not result.usable
    assert result.cpu_seconds is None


@pytest.mark.skipif(
    not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm to run a vCPU on"
)
def test_the_probe_runs_its_loop_on_a_real_vcpu() -> None:
    # Whichever the verdict, the test guest must have run to its hlt with ecx counted down to 0:
    # a timing exists only then. (On the CI machines the verdict is "emulated": kvm_pvm.)
    result = emulation.check_kvm()
    assert result.cpu_seconds is not None, result.reason
    assert result.usable == (result.cpu_seconds <= emulation._CPU_BUDGET_SECONDS)
    assert emulation.kvm_usable() == result.usable


@pytest.mark.parametrize(
    ("mode", "gid", "usable"),
    [
        pytest.param(0o600, 0, False, id="root-only"),
        pytest.param(0o660, QEMU.gid, True, id="qemus-group"),
        pytest.param(0o666, 0, True, id="everyone"),
    ],
)
def test_kvm_is_usable_only_if_qemus_user_may_open_it(
    tmp_path: Path, mode: int, gid: int, usable: bool
) -> None:
    """Root (the launcher) opening /dev/kvm is not enough: QEMU runs as QEMU's user."""
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    os.chown(device, 0, gid)
    device.chmod(mode)
    fast = emulation.KvmCheck(True, "loop ran in 0.05 ms of CPU time", 0.00005)
    result = app._kvm_for(QEMU, fast, device)
    assert result.usable is usable
    if not usable:
        assert QEMU.name in result.reason and "add that user to the device's group" in result.reason
    assert app._kvm_for(QEMU, emulation.KvmCheck(False, "absent"), device).reason == "absent"
