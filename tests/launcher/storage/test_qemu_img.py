"""The qemu-img wrapper: bounded in time, and its failures carry qemu-img's own words."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kvd.launcher.storage import qemu_img


def test_failure_carries_stderr(tmp_path: Path) -> None:
    with pytest.raises(qemu_img.QemuImgError, match="Could not open") as caught:
        qemu_img.info(tmp_path / "missing.qcow2")
    assert not caught.value.transient


def test_a_hung_qemu_img_is_cut_off_as_a_temporary_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hung = tmp_path / "qemu-img"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(0o755)
    monkeypatch.setattr(qemu_img, "QEMU_IMG", str(hung))
    started = time.monotonic()
    with pytest.raises(qemu_img.QemuImgError, match=r"timed out after 0\.2s") as caught:
        qemu_img.info(tmp_path / "disk.qcow2", timeout=0.2)
    assert caught.value.transient
    assert time.monotonic() - started < 10


def test_a_backing_file_needs_its_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        qemu_img.create(tmp_path / "o.qcow2", fmt="qcow2", backing_file=tmp_path / "b.raw")
