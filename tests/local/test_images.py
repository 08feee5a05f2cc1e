"""The local image store: references, imports of real qemu-img files, replace, resolve."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kvd.local.images import (
    DEFAULT_ROOT,
    ImageError,
    ImageNotFound,
    ImageStore,
    StoredImage,
    familiar,
    normalize,
)
from kvd.local.images.table import HostImage, KvdImage
from kvd.version import KVD_IMAGE, kvd_image
from tests.conftest import QEMU, REPO
from tests.support.console import Transcript, tail
from tests.support.image_archives import layer, oci_archive

DIGEST = "sha256:" + "0123456789abcdef" * 4


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=60)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_raw(path: Path, *, size: int, seed: int) -> Path:
    """A raw disk with non-zero content (so no hole hides a partial copy)."""
    block = hashlib.sha512(str(seed).encode()).digest() * 64  # 4 KiB, starts binary
    path.write_bytes(b"\x00" + block[1:] + block * (size // len(block) - 1))
    return path


def leftovers(store: ImageStore) -> list[str]:
    """Everything in the store that is not a published image or a lock file."""
    staging = sorted(os.listdir(store.root / ".staging"))
    linked = {os.readlink(e.path) for e in os.scandir(store.root) if e.is_symlink()}
    orphans = [v for v in os.listdir(store.root / ".versions") if f".versions/{v}" not in linked]
    return staging + orphans


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.fixture
def qcow2(tmp_path: Path) -> Path:
    path = tmp_path / "small.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "16M")
    return path


# -- references ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        pytest.param("kvd-demo", "docker.io/library/kvd-demo:latest", id="bare"),
        pytest.param("kvd-demo:latest", "docker.io/library/kvd-demo:latest", id="tag"),
        pytest.param("library/kvd-demo", "docker.io/library/kvd-demo:latest", id="library"),
        pytest.param(
            "docker.io/library/kvd-demo:latest", "docker.io/library/kvd-demo:latest", id="full"
        ),
        pytest.param("index.docker.io/kvd-demo", "docker.io/library/kvd-demo:latest", id="index"),
        pytest.param("user/app:v1.2", "docker.io/user/app:v1.2", id="docker-hub-user"),
        pytest.param("localhost/app", "localhost/app:latest", id="localhost"),
        pytest.param("localhost:5000/a/b:1.0", "localhost:5000/a/b:1.0", id="port"),
        pytest.param("quay.io/org/app_x__y-z", "quay.io/org/app_x__y-z:latest", id="separators"),
        pytest.param("Registry.Example/app", "Registry.Example/app:latest", id="domain-case"),
        pytest.param("[::1]:5000/app", "[::1]:5000/app:latest", id="ipv6"),
        pytest.param(f"{KVD_IMAGE}:0.1.0", "ghcr.io/kvd-project/kvd:0.1.0", id="kvd-image"),
        pytest.param(
            f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", id="digest-no-latest"
        ),
        pytest.param(
            f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}", id="tag-digest"
        ),
    ],
)
def test_normalize(given: str, normalized: str) -> None:
    assert normalize(given) == normalized
    assert normalize(normalized) == normalized  # idempotent


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param("", "image reference is empty", id="empty"),
        pytest.param("kvd demo", "contains white space", id="space"),
        pytest.param("Kvd-Demo", "repository name must be lowercase", id="uppercase"),
        pytest.param("kvd-demo:", "tag '' must be", id="empty-tag"),
        pytest.param("kvd-demo:.x", "tag '.x' must be", id="bad-tag"),
        pytest.param("x:" + "t" * 129, "must be 1-128", id="long-tag"),
        pytest.param("a//b", "an empty name component", id="double-slash"),
        pytest.param("/app", "an empty name component", id="leading-slash"),
        pytest.param("-app", "'-app' is not a valid name component", id="leading-dash"),
        pytest.param("app@sha256:abc", "a sha256 digest is 64 lowercase hex", id="short-digest"),
        pytest.param("app@md5:" + "0" * 32, "unsupported digest algorithm 'md5'", id="md5"),
        pytest.param("app@latest", "is not ALGORITHM:HEX", id="not-digest"),
        pytest.param("bad_host.io:x/app", "bad registry", id="bad-registry"),
        pytest.param("a" * 250 + "/b", "longer than 255", id="too-long"),
    ],
)
def test_invalid_references_are_refused(given: str, message: str) -> None:
    with pytest.raises(ImageError, match="image reference") as caught:
        normalize(given)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("normalized", "shown"),
    [
        pytest.param("docker.io/library/kvd-demo:latest", "kvd-demo:latest", id="official"),
        pytest.param("docker.io/user/app:v1", "user/app:v1", id="user"),
        pytest.param("quay.io/library/app:v1", "quay.io/library/app:v1", id="other-registry"),
    ],
)
def test_familiar(normalized: str, shown: str) -> None:
    assert familiar(normalized) == shown


# -- imports ------------------------------------------------------------------------------------


def test_import_qcow2(store: ImageStore, qcow2: Path) -> None:
    image = store.import_disk("demo", qcow2)
    assert image.reference == "docker.io/library/demo:latest"
    assert (image.kind, image.format, image.size) == ("disk", "qcow2", qcow2.stat().st_size)
    assert image.disk == image.root / "disk" / "small.qcow2"
    assert [p.name for p in (image.root / "disk").iterdir()] == ["small.qcow2"]
    assert sha256(image.disk) == sha256(qcow2)
    assert stat.S_IMODE(image.disk.stat().st_mode) == 0o444
    assert image.kernel is None and image.initrd is None
    assert store.get("docker.io/library/demo") == image == store.get("demo:latest")
    assert store.list() == [image]
    assert leftovers(store) == []


def test_import_raw_stays_sparse(store: ImageStore, tmp_path: Path) -> None:
    raw = tmp_path / "zero.img"
    qemu_img("create", "-q", "-f", "raw", str(raw), "256M")
    image = store.import_disk("zero", raw)
    assert (image.format, image.size) == ("raw", 256 << 20)
    assert image.disk is not None and image.disk.stat().st_size == 256 << 20
    assert image.disk.stat().st_blocks * 512 < 1 << 20, "the copy filled in the holes"


def test_raw_with_data_keeps_its_bytes(store: ImageStore, tmp_path: Path) -> None:
    raw = random_raw(tmp_path / "data.img", size=3 << 20, seed=1)
    image = store.import_disk("data", raw)
    assert image.format == "raw"
    assert image.disk is not None and sha256(image.disk) == sha256(raw)


def _backed(tmp_path: Path) -> Path:
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(base), "16M")
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(top))
    return top


def _vmdk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", str(path), "16M")
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a disk\n" * 512)  # a multiple of 512 bytes, still text
    return path


def _odd(tmp_path: Path) -> Path:
    path = tmp_path / "odd.img"
    path.write_bytes(b"\x00\x01" * 300)
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.img"
    path.touch()
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "adir"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(_backed, "has a backing file", id="backing-file"),
        pytest.param(_vmdk, "a vmdk image; only qcow2 or raw", id="vmdk"),
        pytest.param(_text, "looks like a text file", id="text"),
        pytest.param(_odd, "not a whole number of 512-byte sectors", id="odd-size"),
        pytest.param(_empty, "is empty", id="empty"),
        pytest.param(_directory, "not a regular file", id="directory"),
        pytest.param(lambda tmp: tmp / "missing.qcow2", "no such file", id="missing"),
    ],
)
def test_bad_disks_are_refused_and_leave_nothing(
    store: ImageStore, tmp_path: Path, make: object, message: str
) -> None:
    assert callable(make)
    source: Path = make(tmp_path)
    with pytest.raises(ImageError) as caught:
        store.import_disk("bad", source)
    assert str(caught.value).startswith(f"{source}: ")
    assert message in str(caught.value)
    assert store.list() == []
    assert leftovers(store) == []


def test_failed_reimport_keeps_the_old_image(
    store: ImageStore, qcow2: Path, tmp_path: Path
) -> None:
    good = store.import_disk("demo", qcow2)
    with pytest.raises(ImageError, match="looks like a text file"):
        store.import_disk("demo", _text(tmp_path))
    assert store.get("demo") == good
    assert good.disk is not None and sha256(good.disk) == sha256(qcow2)
    assert leftovers(store) == []


def test_reimport_replaces_atomically_or_keeps_identical(store: ImageStore, tmp_path: Path) -> None:
    first = store.import_disk("demo", random_raw(tmp_path / "a.img", size=1 << 20, seed=1))
    assert store.import_disk("demo", tmp_path / "a.img") == first  # identical: kept as it is
    second = store.import_disk("demo", random_raw(tmp_path / "b.img", size=1 << 20, seed=2))
    assert second.root != first.root and second.digest != first.digest
    assert not first.root.exists(), "the replaced version is gone"
    assert second.disk is not None and sha256(second.disk) == sha256(tmp_path / "b.img")
    assert store.list() == [second]
    assert leftovers(store) == []


@pytest.mark.integration  # races a second process importing over and over
def test_readers_racing_reimports_see_whole_images(store: ImageStore, tmp_path: Path) -> None:
    sources = [random_raw(tmp_path / f"{n}.img", size=4 << 20, seed=n) for n in (1, 2)]
    wanted = {sha256(s) for s in sources}
    store.import_disk("race", sources[0])
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from pathlib import Path
                from kvd.local.images import ImageStore
                store = ImageStore(Path(sys.argv[1]))
                for i in range(30):
                    store.import_disk("race", Path(sys.argv[2 + i % 2]))
                """
            ),
            str(store.root),
            *map(str, sources),
        ],
        cwd=REPO,
    )
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while writer.poll() is None:
        assert time.monotonic() < deadline, "the re-importing process did not finish in 120 s"
        image = store.get("race")
        assert image is not None, "the image vanished while being replaced"
        try:
            content = sha256(image.disk) if image.disk else ""
        except FileNotFoundError:
            continue  # that version was replaced and discarded meanwhile: gone whole
        assert content in wanted, "a reader saw a half-written image"
        seen[content] = seen.get(content, 0) + 1
    assert writer.returncode == 0
    assert seen, "the reader never saw the image while it was re-imported"
    assert leftovers(store) == []


def test_concurrent_imports_of_different_images(store: ImageStore, tmp_path: Path) -> None:
    sources = {f"img{n}": random_raw(tmp_path / f"{n}.img", size=2 << 20, seed=n) for n in range(6)}
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        done = list(pool.map(lambda item: store.import_disk(*item), sources.items()))
    assert sorted(i.reference for i in store.list()) == sorted(i.reference for i in done)
    for name, source in sources.items():
        image = store.get(name)
        assert image is not None and image.disk is not None
        assert sha256(image.disk) == sha256(source)
    assert leftovers(store) == []


@pytest.mark.integration  # an importing process, killed
def test_a_killed_import_is_swept_by_the_next(store: ImageStore, qcow2: Path) -> None:
    # The import dies (SIGKILL) after copying, before publishing: its staging stays behind.
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import os, signal, sys
                from pathlib import Path
                from kvd.local.images import ImageStore, files
                files.check_disk = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
                ImageStore(Path(sys.argv[1])).import_disk("demo", Path(sys.argv[2]))
                """
            ),
            str(store.root),
            str(qcow2),
        ],
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9
    assert leftovers(store) != [], "the killed import left no staging to sweep"
    assert store.list() == []
    store.import_disk("other", qcow2)
    assert leftovers(store) == []
    assert [i.reference for i in store.list()] == ["docker.io/library/other:latest"]


def test_modes_ignore_the_umask(store: ImageStore, qcow2: Path) -> None:
    old = os.umask(0o077)
    try:
        image = store.import_disk("demo", qcow2)
    finally:
        os.umask(old)
    assert image.disk is not None
    for directory in (store.root, image.root, image.disk.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755, directory
    assert stat.S_IMODE(image.disk.stat().st_mode) == 0o444


def test_kernel_image(store: ImageStore, guest_dir: Path) -> None:
    kernel, initrd = guest_dir / "vmlinuz", guest_dir / "initrd.img"
    image = store.import_kernel("demo-kernel:1", kernel=kernel, initrd=initrd)
    assert (image.kind, image.format) == ("kernel", None)
    assert image.kernel == image.root / "boot" / "vmlinuz"
    assert image.initrd == image.root / "boot" / "initrd.img"
    assert sha256(image.kernel) == sha256(kernel) and sha256(image.initrd) == sha256(initrd)
    assert image.size == kernel.stat().st_size + initrd.stat().st_size
    assert image.disk is None
    only = store.import_kernel("demo-kernel:2", kernel=kernel, initrd=None)
    assert only.initrd is None and sorted(os.listdir(only.root / "boot")) == ["vmlinuz"]


def test_kernel_and_initrd_are_checked(store: ImageStore, guest_dir: Path, qcow2: Path) -> None:
    with pytest.raises(ImageError, match=r"initrd\.img: not a Linux kernel image"):
        store.import_kernel("k", kernel=guest_dir / "initrd.img", initrd=None)
    with pytest.raises(ImageError, match=r"small\.qcow2: not an initrd"):
        store.import_kernel("k", kernel=guest_dir / "vmlinuz", initrd=qcow2)
    assert store.list() == []
    assert leftovers(store) == []


def test_list_and_remove(store: ImageStore, qcow2: Path, guest_dir: Path) -> None:
    assert store.list() == []
    assert not store.root.exists(), "reading must not create the store"
    disk = store.import_disk("b/disk", qcow2)
    kernel = store.import_kernel("a/kernel", kernel=guest_dir / "vmlinuz", initrd=None)
    assert store.list() == [kernel, disk]  # sorted by reference
    assert store.remove("b/disk:latest") is True
    assert not disk.root.exists()
    assert store.remove("b/disk") is False
    assert store.get("b/disk") is None
    assert store.list() == [kernel]
    assert leftovers(store) == []


# -- resolution ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param(kvd_image(), id="this-version"),
        pytest.param(f"{KVD_IMAGE}:any-tag", id="other-tag"),
        pytest.param(f"{KVD_IMAGE}@{DIGEST}", id="digest"),
        pytest.param(KVD_IMAGE, id="untagged"),
        pytest.param("localhost/kvd/kvd-controller:0.1.0", id="chart-controller"),
        pytest.param("localhost/kvd/kvd-handler:0.1.0", id="chart-handler"),
        pytest.param("localhost/kvd/kvd-launcher:any", id="chart-launcher"),
    ],
)
def test_kvd_image_runs_this_installation(store: ImageStore, ref: str) -> None:
    image = store.resolve(ref)
    assert image == KvdImage(normalize(ref))
    assert isinstance(image, KvdImage) and (image.bin_dir / "kvd").is_file()


@pytest.mark.parametrize(
    "ref",
    ["busybox", "busybox:1.36", "docker.io/library/busybox:stable", "kvd.local/host"],
)
def test_host_images(store: ImageStore, ref: str) -> None:
    assert store.resolve(ref) == HostImage(normalize(ref))


@pytest.mark.parametrize("ref", ["busybox", f"{KVD_IMAGE}:1", "kvd.local/host:x"])
def test_builtin_images_cannot_be_imported(store: ImageStore, qcow2: Path, ref: str) -> None:
    with pytest.raises(ImageError, match="cannot be imported"):
        store.import_disk(ref, qcow2)


def test_stored_and_unknown_images(store: ImageStore, qcow2: Path) -> None:
    stored = store.import_disk("kvd-demo", qcow2)
    assert store.resolve("docker.io/library/kvd-demo:latest") == stored
    assert isinstance(stored, StoredImage)
    with pytest.raises(ImageNotFound) as caught:
        store.resolve("example.com/vm:2")
    assert str(caught.value) == (
        f'image "example.com/vm:2" is not in the local image store ({store.root}); import it '
        f"with: kvd image --store {store.root} import example.com/vm:2 FILE (a qcow2 or raw "
        "disk, or a containerDisk image saved as an OCI or docker archive), or "
        f"kvd image --store {store.root} import example.com/vm:2 --kernel VMLINUZ "
        "[--initrd INITRD] (a kernel-boot image)"
    )
    assert caught.value.reference == "example.com/vm:2"
    with pytest.raises(ImageError, match="repository name must be lowercase"):
        store.resolve("Bad")


def test_default_store_message_has_no_store_option() -> None:
    message = str(ImageNotFound("kvd-demo", root=DEFAULT_ROOT.absolute()))
    assert "import it with: kvd image import kvd-demo FILE" in message
    assert "--store" not in message


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("saved_as", ["qcow2", "oci-archive"])
def test_an_imported_disk_boots(
    store: ImageStore, guest_dir: Path, tmp_path: Path, saved_as: str
) -> None:
    qcow2 = guest_dir / "kvd-demo.qcow2"
    if saved_as == "qcow2":
        image = store.import_disk("kvd-demo", qcow2)
    else:  # KubeVirt's containerDisk shape: FROM scratch + ADD --chown=107:107 disk.qcow2 /disk/
        archive = oci_archive(tmp_path / "kvd-demo.tar", [layer({"disk/disk.qcow2": qcow2})])
        image = store.import_archive("kvd-demo", archive)
    assert image.disk is not None
    console = tmp_path / "console.log"
    console.touch()
    argv = [
        QEMU, "-accel", "tcg", "-machine", "q35", "-m", "256", "-nodefaults", "-no-user-config",
        "-display", "none", "-serial", f"file:{console}",
        # snapshot: the stored file is read-only; the guest's writes go to a temporary layer
        "-drive", f"file={image.disk},format=qcow2,if=virtio,snapshot=on",
    ]  # fmt: skip
    qemu = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def stderr() -> str:
        if qemu.poll() is None or qemu.stderr is None:
            return "(QEMU runs)"
        return f"QEMU exited {qemu.returncode}: {qemu.stderr.read().decode(errors='replace')}"

    try:
        serial = Transcript(
            tail(console, running=lambda: qemu.poll() is None),
            what="the guest's serial console",
            diagnose=stderr,
        )
        serial.wait_for("KVD-READY", timeout=90)
        assert "KVD-GUEST-BOOTED" in serial.text
    finally:
        qemu.kill()
        qemu.wait(timeout=30)
