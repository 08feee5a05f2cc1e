"""`kvd image` as a user runs it: the installed console script against a temporary store."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kvd.local.images import ImageNotFound, ImageStore, StoredImage
from tests.support.image_archives import layer, oci_archive

pytestmark = pytest.mark.integration  # runs the installed kvd and kvdctl programs

KVD = shutil.which("kvd", path=str(Path(sys.executable).parent)) or "kvd"


def kvd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KVD, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def assert_fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.startswith("kvd image: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def qcow2(tmp_path: Path) -> Path:
    path = tmp_path / "small.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True, timeout=60
    )
    return path


def test_import_list_rm(store: str, guest_dir: Path) -> None:
    disk = guest_dir / "kvd-demo.qcow2"
    imported = kvd("image", "--store", store, "import", "kvd-demo", str(disk))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == "imported kvd-demo:latest (disk, qcow2, 15.2MiB)\n"
    again = kvd("image", "--store", store, "import", "docker.io/library/kvd-demo", str(disk))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("kvd-demo:latest: unchanged (identical to the image imported ")

    kernel = kvd(
        "image",
        "import",
        "kvd-demo-kernel:v1",
        "--kernel",
        str(guest_dir / "vmlinuz"),
        "--initrd",
        str(guest_dir / "initrd.img"),
        "--store",  # after the subcommand works too
        store,
    )
    assert kernel.returncode == 0, kernel.stderr
    assert kernel.stdout.startswith("imported kvd-demo-kernel:v1 (kernel, ")

    listed = kvd("image", "--store", store, "list")
    assert listed.returncode == 0, listed.stderr
    rows = table(listed.stdout)
    assert rows[0] == ["REFERENCE", "KIND", "FORMAT", "SIZE", "IMPORTED", "SOURCE"]
    assert [r[:4] for r in rows[1:]] == [
        ["kvd-demo-kernel:v1", "kernel", "-", rows[1][3]],
        ["kvd-demo:latest", "disk", "qcow2", "15.2MiB"],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[4]) for r in rows[1:])
    assert [r[5] for r in rows[1:]] == [
        f"kernel:{guest_dir / 'vmlinuz'}",
        f"qcow2:{disk}",
    ]

    removed = kvd("image", "--store", store, "rm", "kvd-demo")
    assert (removed.returncode, removed.stdout) == (0, "removed kvd-demo:latest\n")
    assert [r[0] for r in table(kvd("image", "ls", "--store", store).stdout)] == [
        "REFERENCE",
        "kvd-demo-kernel:v1",
    ]


def test_a_saved_containerdisk_image_imports_and_lists_where_it_came_from(
    store: str, qcow2: Path, tmp_path: Path
) -> None:
    archive = oci_archive(tmp_path / "cirros.tar", [layer({"disk/cirros.qcow2": qcow2})])
    imported = kvd("image", "--store", store, "import", "localhost/cirros:1", str(archive))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == "imported localhost/cirros:1 (disk, qcow2, 192.0KiB)\n"
    rows = table(kvd("image", "--store", store, "list").stdout)
    assert rows[1][0] == "localhost/cirros:1"
    assert rows[1][5:] == [f"oci-archive:{archive}", "(/disk/cirros.qcow2)"]

    empty = oci_archive(tmp_path / "empty.tar", [layer({"etc/os-release": b"ID=x\n"})])
    assert_fails(
        kvd("image", "--store", store, "import", "other", str(empty)),
        "the image has no disk under /disk/",
    )


def test_a_kernel_image_holds_its_files_where_the_vmi_looks(store: str, guest_dir: Path) -> None:
    """KubeVirt's vmi-kernel-boot.yaml names /boot/vmlinuz-virt and /boot/initramfs-virt."""
    imported = kvd(
        "image", "--store", store, "import", "alpine-kernel",
        "--kernel", str(guest_dir / "vmlinuz"), "--kernel-path", "/boot/vmlinuz-virt",
        "--initrd", str(guest_dir / "initrd.img"), "--initrd-path", "/boot/initramfs-virt",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    image = ImageStore(Path(store)).resolve("alpine-kernel")
    assert isinstance(image, StoredImage)
    assert image.kernel == image.root / "boot" / "vmlinuz-virt"
    assert image.initrd == image.root / "boot" / "initramfs-virt"
    assert sorted(os.listdir(image.root / "boot")) == ["initramfs-virt", "vmlinuz-virt"]


def test_store_from_environment(tmp_path: Path, qcow2: Path) -> None:
    env = {"KVD_IMAGE_STORE": str(tmp_path / "env-store")}
    assert kvd("image", "import", "demo", str(qcow2), env=env).returncode == 0
    assert [i.reference for i in ImageStore(tmp_path / "env-store").list()] == [
        "docker.io/library/demo:latest"
    ]


def test_the_not_found_hint_is_a_working_command(store: str, qcow2: Path) -> None:
    with pytest.raises(ImageNotFound) as caught:
        ImageStore(Path(store)).resolve("example.com/vms/demo:1")
    hint = re.search(r"import it with: (kvd image .*?) FILE ", str(caught.value))
    assert hint is not None, str(caught.value)
    command = shlex.split(hint.group(1))
    assert command[:2] == ["kvd", "image"]
    done = kvd(*command[1:], str(qcow2))
    assert done.returncode == 0, done.stderr
    assert ImageStore(Path(store)).resolve("example.com/vms/demo:1").kind == "disk"


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a disk\n")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["import", "x", "{tmp}/missing.qcow2"], "missing.qcow2: no such file", id="missing"
        ),
        pytest.param(["import", "x", "{text}"], "notes.txt: looks like a text file", id="text"),
        pytest.param(["import", "Bad", "{qcow2}"], "repository name must be lowercase", id="name"),
        pytest.param(["import", "busybox", "{qcow2}"], "cannot be imported", id="builtin"),
        pytest.param(
            ["import", "k", "--kernel", "{qcow2}"], "not a Linux kernel image", id="kernel"
        ),
        pytest.param(
            ["rm", "nope"], 'image "nope" is not in the local image store', id="rm-unknown"
        ),
        pytest.param(
            ["import", "k", "--kernel", "{kernel}", "--kernel-path", "/boot/../etc/vmlinuz"],
            "kernel path '/boot/../etc/vmlinuz': give an absolute path of plain names",
            id="kernel-path-dotdot",
        ),
        pytest.param(
            ["import", "k", "--kernel", "{kernel}", "--kernel-path", "boot/vmlinuz"],
            "kernel path 'boot/vmlinuz': give an absolute path",
            id="kernel-path-relative",
        ),
        pytest.param(
            [
                "import",
                "k",
                "--kernel",
                "{kernel}",
                "--initrd",
                "{initrd}",
                "--initrd-path",
                "/boot/vmlinuz",
            ],
            "the kernel and the initrd cannot both be at /boot/vmlinuz",
            id="same-path",
        ),
    ],
)
def test_errors_are_one_line_and_exit_1(
    store: str, tmp_path: Path, qcow2: Path, *, guest_dir: Path, args: list[str], message: str
) -> None:
    values = {
        "tmp": str(tmp_path),
        "text": str(_text_file(tmp_path)),
        "qcow2": str(qcow2),
        "kernel": str(guest_dir / "vmlinuz"),
        "initrd": str(guest_dir / "initrd.img"),
    }
    result = kvd("image", "--store", store, *(a.format(**values) for a in args))
    assert_fails(result, message)
    assert result.stdout == ""
    assert ImageStore(Path(store)).list() == []


def test_unwritable_store(qcow2: Path) -> None:
    # /proc refuses new directories even to root
    assert_fails(
        kvd("image", "--store", "/proc/kvd-images", "import", "x", str(qcow2)),
        "/proc/kvd-images",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["import", "x"], "give either FILE", id="nothing"),
        pytest.param(["import", "x", "f", "--kernel", "k"], "give either FILE", id="both"),
        pytest.param(
            ["import", "x", "f", "--initrd", "i"], "--initrd goes with --kernel", id="initrd"
        ),
        pytest.param(
            ["import", "x", "f", "--kernel-path", "/k"], "--kernel-path goes with --kernel", id="kp"
        ),
        pytest.param(
            ["import", "x", "--kernel", "k", "--initrd-path", "/i"],
            "--initrd-path goes with --initrd",
            id="ip",
        ),
        pytest.param(["rm"], "the following arguments are required: NAME", id="rm-nothing"),
    ],
)
def test_usage_errors(store: str, args: list[str], message: str) -> None:
    result = kvd("image", "--store", store, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
