"""Smoke-runs of the images `make images` builds (containers/): each daemon answers `--version`
from its own entry point, runs as the user its Containerfile promises, and the launcher image
holds what a launcher pod and the debugging recipes need, including a capability seed that
libvirt accepts. The containerDisk recipe is applied to a fresh disk and its image inspected."""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.containers import podman

pytestmark = pytest.mark.integration  # runs containers

QCOW2_MAGIC = b"QFI\xfb"


@pytest.mark.parametrize("daemon", podman.DAEMONS)
def test_each_daemon_image_answers_version_from_its_entry_point(daemon: str) -> None:
    (ref,) = podman.require(f"kvd-{daemon}")
    out = podman.run(ref, "--version")
    assert out.startswith(f"kvd {daemon} {podman.VERSION} (Python 3.11"), out
    label = '{{index .Labels "org.opencontainers.image.version"}}'
    assert podman.ok("image", "inspect", "--format", label, ref).strip() == podman.VERSION


@pytest.mark.parametrize(
    ("daemon", "modules"),
    [
        pytest.param("controller", "kvd.controller.main, kvd.controller.app", id="controller"),
        pytest.param("handler", "kvd.handler.main, kvd.handler.agent, kvd.rpc_auth", id="handler"),
        # libvirt-python against the image's own libvirt: the one native link the venv makes
        pytest.param("launcher", "kvd.launcher.app, kvd.launcher.model, libvirt", id="launcher"),
    ],
)
def test_each_daemon_image_loads_its_daemons_code(daemon: str, modules: str) -> None:
    # --version answers before the daemon's modules load (kvd's commands load them lazily)
    (ref,) = podman.require(f"kvd-{daemon}")
    out = podman.run(ref, "-c", f"import {modules}; print('loaded')", entrypoint="python")
    assert out.strip() == "loaded"


@pytest.mark.parametrize(
    ("daemon", "uid"),
    [
        # the controller needs no privilege at all
        pytest.param("controller", "1001", id="controller-non-root"),
        # launcher sockets are root's 0600, in host directories the handler cleans up
        pytest.param("handler", "0", id="handler-root"),
        # namespaces, libvirtd in system mode, the pod's network; QEMU itself runs as 107
        pytest.param("launcher", "0", id="launcher-root"),
    ],
)
def test_each_image_runs_as_its_user(daemon: str, uid: str) -> None:
    (ref,) = podman.require(f"kvd-{daemon}")
    assert podman.ok("image", "inspect", "--format", "{{.Config.User}}", ref).strip() == (
        f"{uid}:{uid}"
    )
    assert podman.run(ref, "-u", entrypoint="id").strip() == uid


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["virsh", "--version"], "9.0.0", id="virsh"),
        pytest.param(["qemu-system-x86_64", "--version"], "QEMU emulator version 7.2", id="qemu"),
        pytest.param(["qemu-img", "--version"], "qemu-img version 7.2", id="qemu-img"),
        pytest.param(["libvirtd", "--version"], "libvirtd (libvirt) 9.0.0", id="libvirtd"),
        pytest.param(["ip", "-V"], "ip utility", id="ip"),
        pytest.param(["brctl", "--version"], "bridge-utils", id="brctl"),
        pytest.param(["nft", "--version"], "nftables", id="nft"),
        pytest.param(["busybox", "udhcpd", "--help"], "udhcpd", id="udhcpd"),
    ],
)
def test_launcher_image_has_its_tools(argv: list[str], expected: str) -> None:
    (ref,) = podman.require("kvd-launcher")
    result = podman.podman(*podman.RUN, "--entrypoint", argv[0], ref, *argv[1:])
    output = result.stdout + result.stderr  # busybox and brctl answer on stderr
    assert expected in output, f"{' '.join(argv)} in {ref} exited {result.returncode}: {output}"


def test_launcher_image_runs_qemu_as_libvirt_qemu_107() -> None:
    (ref,) = podman.require("kvd-launcher")
    passwd = podman.run(ref, "passwd", "libvirt-qemu", entrypoint="getent").strip()
    assert passwd.split(":")[2:4] == ["107", "107"], passwd


def test_launcher_image_capability_seed_is_accepted_by_libvirt() -> None:
    # capseed finds the baked entry for each CPU and starts a libvirtd seeded from it: it exits
    # 0 only if libvirt accepted the seed instead of probing QEMU again. Valid on the host that
    # built the image (the key covers kernel, CPU and file ctimes: kvd-launcher.Containerfile).
    (ref,) = podman.require("kvd-launcher")
    store = podman.run(ref, "-c", "ls /var/cache/kvd/libvirt-caps", entrypoint="sh").split()
    assert store, f"{ref} has no capability cache entries"
    out = podman.run(
        ref,
        "-m",
        "kvd.launcher.capseed",
        entrypoint="python",
        options=("--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"),
    )
    *cpus, summary = out.strip().splitlines()
    assert "ready for" in summary, out
    # "up to date": the baked entry was there and libvirt took it (else "probed QEMU in ...")
    assert cpus, out
    assert all("up to date" in line for line in cpus), out


def test_demo_containerdisk_holds_the_demo_guest_under_disk() -> None:
    (ref,) = podman.require("kvd-demo-containerdisk")
    members = _members(ref)
    assert set(members) == {"disk", "disk/kvd-demo.qcow2"}, sorted(members)
    disk, head = members["disk/kvd-demo.qcow2"]
    assert (disk.uid, disk.gid) == (107, 107)
    assert head == QCOW2_MAGIC


def test_containerdisk_recipe_puts_a_qcow2_under_disk(tmp_path: Path) -> None:
    # the recipe of containers/containerdisk.Containerfile, on a disk made here
    disk = tmp_path / "my-disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    ref = f"localhost/kvd-test/containerdisk-{uuid.uuid4().hex[:12]}:1"
    podman.ok(
        "build", "--quiet",
        "-f", str(REPO / "containers" / "containerdisk.Containerfile"),
        "--build-arg", f"DISK={disk.name}", "-t", ref, str(tmp_path),
    )  # fmt: skip
    try:
        members = _members(ref)
        assert set(members) == {"disk", "disk/my-disk.qcow2"}, sorted(members)
        entry, head = members["disk/my-disk.qcow2"]
        assert (entry.uid, entry.gid) == (107, 107)
        assert entry.size == disk.stat().st_size
        assert head == QCOW2_MAGIC
    finally:
        podman.ok("rmi", "--force", ref)


def test_missing_images_fail_saying_to_run_make_images() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"Run `make images`"):
        podman.require("kvd-no-such-image")


def _members(ref: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """The files of an image that has no shell (FROM scratch), each with its first four bytes:
    exported from a container created (never started) from it."""
    container = podman.ok("create", ref, "/none").strip()
    try:
        tar = subprocess.run(
            ["podman", "export", container], capture_output=True, check=True, timeout=120
        ).stdout
    finally:
        podman.ok("rm", "--force", container)
    members = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for member in archive.getmembers():
            content = archive.extractfile(member) if member.isfile() else None
            head = content.read(4) if content is not None else b""
            members[member.name.strip("/").removeprefix("./")] = (member, head)
    return members
