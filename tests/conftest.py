"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

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


# Test files that boot guests or whole local clusters: the slowest files, several minutes each.
# Under pytest-xdist (`make test`: a worker per core, `--dist loadgroup`) every test file is one
# group, run whole on one worker (its module fixtures, a local cluster for e2e files, set up once),
# and these files are handed out first so that none of them starts last and becomes the tail.
# Several of them may run at once (`make test` has a worker per core): each has its own
# cluster, bridge, CIDR, cgroup and nftables scope.
MACHINE_TESTS = (
    "tests/e2e/",
    "tests/launcher/",
    "tests/handler/",
    "tests/guest/",
    "tests/controller/",
    "tests/containers/test_launcher_image.py",
    "tests/cli/test_demo.py",
    "tests/local/node/test_launcher_pod.py",
    "tests/local/test_images.py",
)


def xdist_group(nodeid: str) -> str:
    """The group a test runs in under xdist: its file."""
    return nodeid.split("::", maxsplit=1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the machines' files first (a stable sort: each file's own order is kept)."""
    if config.getvalue("dist") == "loadgroup":
        items.sort(key=lambda item: not item.nodeid.startswith(MACHINE_TESTS))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` by `xdist_group`, computed from each test's node id on the controller.

    Not by `xdist_group` markers: xdist 3.8 appends a marker's group to `item._nodeid`, which
    pytest 9.2 no longer reads (a node id is `_id` now), so every marker is silently ignored and
    each test is scheduled on its own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under xdist

    class ByGroup(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return ByGroup(config, log)
