"""Running kvd's images with podman, as the smoke tests need: each image found or the test failed.

The images are the ones `make images` builds (scripts/images), under the registry prefix it uses
(KVD_IMAGE_REGISTRY, default localhost/kvd/) and tagged with the installed kvd's version. A test
that finds one missing fails and says to build them: CI builds them in scripts/setup, so a missing
image is a broken setup, never a reason to skip.

Containers run as MACHINE.md says works on these hosts: runc (crun cannot run under hybrid
cgroups), no network (podman's bridge would sit beside kvd's own), and a nofile limit the host
permits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import metadata

import pytest

REGISTRY = os.environ.get("KVD_IMAGE_REGISTRY", "localhost/kvd/")
VERSION = metadata.version("kvd")
TAG = VERSION.replace("+", "_")  # as scripts/images and kvd.version.kvd_image tag it
DAEMONS = ("controller", "handler", "launcher")
OPTIONS = (
    "--network", "none", "--runtime", "runc",
    "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
)  # fmt: skip
RUN = ("run", "--rm", *OPTIONS)
TIMEOUT = 300.0  # the first run of an image on a busy host unpacks nothing but may wait on locks


def image(name: str) -> str:
    return f"{REGISTRY}{name}:{TAG}"


def podman(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """podman's result, whatever its exit status."""
    binary = shutil.which("podman")
    if binary is None:
        pytest.fail(
            "podman is not installed: run scripts/setup (it installs podman)", pytrace=False
        )
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(*args: str, timeout: float = TIMEOUT) -> str:
    """podman's stdout; a failure fails the test with podman's own words."""
    result = podman(*args, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr.strip()}",
            pytrace=False,
        )
    return result.stdout


def require(*names: str) -> list[str]:
    """The references of the named images; fails, saying how to build them, if any is missing."""
    refs = [image(n) for n in names]
    missing = [r for r in refs if podman("image", "exists", r).returncode != 0]
    if missing:
        pytest.fail(
            f"kvd's container images are not built: {', '.join(missing)} missing. "
            "Run `make images` (scripts/setup runs it), with the same KVD_IMAGE_REGISTRY.",
            pytrace=False,
        )
    return refs


def run(ref: str, *args: str, entrypoint: str | None = None, options: tuple[str, ...] = ()) -> str:
    """Run the image once and return its stdout (its entry point, or `entrypoint`, with args)."""
    chosen = ("--entrypoint", entrypoint) if entrypoint is not None else ()
    return ok(*RUN, *options, *chosen, ref, *args)
