"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# pytester tests the skip gate; the skip gate fails CI on a skip nobody allowed (its docstring).
pytest_plugins = ["pytester", "tests.support.skipgate"]

REPO = Path(__file__).resolve().parents[1]
GUEST_FILES = ("vmlinuz", "initrd.img", "kvd-demo.qcow2", "kernel-release")
QEMU = "qemu-system-x86_64"


@pytest.fixture(scope="session")
def guest_dir() -> Path:
    """The directory with the built guest; fails the test if it has not been built."""
    d = Path(os.environ.get("KVD_GUEST_DIR") or REPO / "build" / "guest")
    missing = [f for f in GUEST_FILES if not (d / f).is_file()]
    if missing:
        pytest.fail(
            f"the kvd-demo test guest is not built: {d} lacks {', '.join(missing)}. "
            "Build it with `bash guest/build.sh` (as root, on Debian 12) "
            "or point KVD_GUEST_DIR at a built guest.",
            pytrace=False,
        )
    for tool in (QEMU, "qemu-img"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} not found: apt-get install qemu-system-x86 qemu-utils", pytrace=False
            )
    return d


# Tests that boot guests or whole local clusters (these directories, and any integration test
# that asks for the built guest): under pytest-xdist (`make test` runs two
# workers) they all run on one worker, one at a time, as before, so two TCG guests never
# compete for this machine's two cores inside one test's deadlines. Every other test file is
# a group of its own (its module fixtures set up once), spread over both workers.
MACHINE_TESTS = (
    "tests/e2e/",
    "tests/launcher/",
    "tests/handler/",
    "tests/guest/",
    "tests/controller/",
    "tests/cli/test_demo.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::")[0]
        boots = item.get_closest_marker("integration") and "guest_dir" in item.fixturenames
        group = "machines" if boots or path.startswith(MACHINE_TESTS) else path
        item.add_marker(pytest.mark.xdist_group(group))
