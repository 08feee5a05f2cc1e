"""Fixtures for the launcher's tests: QEMU's user as unit tests see it, and a directory it can
reach."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvd.launcher.qemu_user import QemuUser

# Not a user of this machine: unit tests chown to it as root and read the result back; only the
# integration tests run QEMU, as the real libvirt-qemu.
QEMU = QemuUser(name="kvd-test-qemu", uid=64055, gid=64056, groups=frozenset({64056, 64057}))


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temporary directory any user may pass through (0755), for files QEMU's user must reach:
    tmp_path lies under /tmp/pytest-of-root, which pytest keeps 0700."""
    directory = Path(tempfile.mkdtemp(prefix="kvd-test-"))
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
