"""The capability seed store, with libvirt's part played by writing files into the private cache."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kvd.launcher.capcache import CapabilityCache
from tests.support.waiting import wait_for


def cache(tmp_path: Path, name: str, *, store: Path | None = None) -> CapabilityCache:
    libvirtd = tmp_path / "libvirtd"  # its size and mtime are part of the identity
    if not libvirtd.exists():
        libvirtd.write_text("v1")
    return CapabilityCache(
        store or tmp_path / "store", cache_dir=tmp_path / name, libvirtd=libvirtd, cpu=0
    )


def libvirt_probes(c: CapabilityCache, content: str = "<qemuCaps/>") -> None:
    (c.private / "abc.xml").write_text(content)


def test_a_probe_is_published_and_seeds_the_next_daemon(tmp_path: Path) -> None:
    first = cache(tmp_path, "a")
    seeding = first.seed()
    assert not seeding.seeded
    libvirt_probes(first)
    assert first.probed(seeding)
    assert first.store_back(seeding)

    second = cache(tmp_path, "b")
    seeding = second.seed()
    assert seeding.seeded
    copied, original = second.private / "abc.xml", first.private / "abc.xml"
    assert copied.read_text() == "<qemuCaps/>"
    # The mtime survives the copy: libvirt accepting the seed leaves it, re-probing moves it.
    assert copied.stat().st_mtime_ns == original.stat().st_mtime_ns
    assert not second.probed(seeding)


def test_a_rejected_seed_is_replaced_whole(tmp_path: Path) -> None:
    first = cache(tmp_path, "a")
    seeding = first.seed()
    libvirt_probes(first, "<old/>")
    first.store_back(seeding)
    old_entry = (first.store / seeding.key).resolve()

    second = cache(tmp_path, "b")
    seeding = second.seed()
    os.utime(second.private / "abc.xml", ns=(0, 0))  # libvirt rewrote it: the stamp moves
    libvirt_probes(second, "<new/>")
    assert second.probed(seeding)
    assert second.store_back(seeding)

    entry = (second.store / seeding.key).resolve()
    assert entry != old_entry and not old_entry.exists()
    assert (entry / "abc.xml").read_text() == "<new/>"
    assert cache(tmp_path, "c").seed().seeded


def test_a_changed_libvirtd_is_a_different_key(tmp_path: Path) -> None:
    first = cache(tmp_path, "a")
    seeding = first.seed()
    libvirt_probes(first)
    first.store_back(seeding)
    (tmp_path / "libvirtd").write_text("v2, upgraded")
    second = cache(tmp_path, "b")
    assert second.key() != seeding.key
    assert not second.seed().seeded


def test_a_restarted_daemon_keeps_its_own_cache(tmp_path: Path) -> None:
    other = cache(tmp_path, "other")
    seeding = other.seed()
    libvirt_probes(other, "<from-the-store/>")
    other.store_back(seeding)
    c = cache(tmp_path, "a")
    c.private.mkdir(parents=True)
    libvirt_probes(c, "<probed-by-the-first-daemon/>")  # same sandbox, libvirtd restarted
    seeding = c.seed()
    assert not seeding.seeded
    assert not c.probed(seeding)
    assert (c.private / "abc.xml").read_text() == "<probed-by-the-first-daemon/>"


def test_an_unwritable_store_is_only_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    c = cache(tmp_path, "a", store=blocker / "store")
    seeding = c.seed()
    libvirt_probes(c)
    assert not c.store_back(seeding)


def stored(tmp_path: Path, name: str) -> CapabilityCache:
    """A cache whose probe is in the store."""
    c = cache(tmp_path, name)
    seeding = c.seed()
    libvirt_probes(c)
    assert c.store_back(seeding)
    return c


@pytest.fixture
def qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A QEMU binary on PATH (libvirtd finds QEMU there): its stat is part of the identity."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    binary = bin_dir / "qemu-system-x86_64"
    binary.write_text("QEMU 7.2")
    monkeypatch.setenv("PATH", str(bin_dir))
    return binary


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda b: b.write_text("QEMU 8.0, upgraded"), id="new-version"),
        pytest.param(lambda b: os.utime(b, ns=(0, 0)), id="new-mtime"),
        # a reinstall of the same package: dpkg restores the mtime, the ctime moves (and libvirt
        # compares the ctime)
        pytest.param(
            lambda b: os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns)),
            id="same-mtime-new-ctime",
        ),
    ],
)
def test_a_seed_for_another_qemu_is_not_used(
    tmp_path: Path, qemu: Path, change: Callable[[Path], object]
) -> None:
    old = stored(tmp_path, "a")
    assert str(qemu) in old.identity()["qemu"]
    old_key = old.key()
    wait_for_ctime_to_move(qemu, qemu.stat().st_ctime_ns, change)
    new = cache(tmp_path, "b")
    assert new.key() != old_key
    assert (new.store / old_key).is_dir()  # the old QEMU's entry is there, and must be ignored
    seeding = new.seed()
    assert not seeding.seeded
    assert not list(new.private.glob("*.xml")), "the old QEMU's capabilities were copied"


def wait_for_ctime_to_move(path: Path, before: int, change: Callable[[Path], object]) -> None:
    """Apply `change`; ctimes have the kernel's tick granularity, so repeat until it shows."""

    def moved() -> bool:
        change(path)
        return path.stat().st_ctime_ns != before

    wait_for(f"the ctime of {path} to move", moved, timeout=5, interval=0.005)


def test_an_entry_whose_record_disagrees_is_not_used(tmp_path: Path) -> None:
    c = stored(tmp_path, "a")
    entry = c.store / c.key()
    identity = json.loads((entry / "identity.json").read_text())
    identity["cpu"] = 7  # made on another CPU (or host), published under this key by hand
    (entry / "identity.json").write_text(json.dumps(identity))
    seeding = cache(tmp_path, "b").seed()
    assert not seeding.seeded
