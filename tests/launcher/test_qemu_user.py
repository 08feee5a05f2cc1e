"""QEMU's user: what its mode bits let it do, and what the launcher changes for it."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from kvd.launcher import qemu_user
from kvd.launcher.qemu_user import QemuUserError
from tests.launcher.conftest import QEMU

OTHER = 4242  # neither QEMU's uid nor any of its groups


def _stat(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "read", "write"),
    [
        pytest.param(0o600, QEMU.uid, OTHER, True, True, id="owner-rw"),
        pytest.param(0o400, QEMU.uid, OTHER, True, False, id="owner-r"),
        # the owner class decides alone, even where the group or others would allow more
        pytest.param(0o066, QEMU.uid, QEMU.gid, False, False, id="owner-denied-first"),
        pytest.param(0o640, OTHER, QEMU.gid, True, False, id="primary-group"),
        pytest.param(0o660, OTHER, 64057, True, True, id="supplementary-group"),
        pytest.param(0o604, OTHER, QEMU.gid, False, False, id="group-denied-first"),
        pytest.param(0o644, OTHER, OTHER, True, False, id="others-r"),
        pytest.param(0o600, OTHER, OTHER, False, False, id="root-only"),
    ],
)
def test_what_the_mode_bits_allow(mode: int, uid: int, gid: int, read: bool, write: bool) -> None:
    st = _stat(mode, uid, gid)
    assert QEMU.allows(st) is read
    assert QEMU.allows(st, write=True) is write


def test_search_needs_the_x_bit_of_the_class_that_applies() -> None:
    assert QEMU.allows(_stat(0o710, OTHER, QEMU.gid), search=True)
    assert not QEMU.allows(_stat(0o750, OTHER, OTHER), search=True)
    assert QEMU.allows(_stat(0o711, OTHER, OTHER), search=True)


def test_a_blocking_directory_is_found_through_symlinks_too(reachable_tmp: Path) -> None:
    closed = reachable_tmp / "closed"
    (closed / "inner").mkdir(parents=True)
    (closed / "inner" / "disk").write_bytes(b"x")
    closed.chmod(0o700)
    link = reachable_tmp / "link"
    link.symlink_to(closed / "inner" / "disk")
    assert QEMU.blocking_directory(reachable_tmp / "open") is None
    assert QEMU.blocking_directory(closed / "inner" / "disk") == closed
    assert QEMU.blocking_directory(link) == closed  # the way QEMU follows it
    with pytest.raises(QemuUserError, match=r"cannot pass through the directory .*closed"):
        QEMU.check(link, "the disk")


def test_own_and_own_directory(reachable_tmp: Path) -> None:
    made = reachable_tmp / "made"
    made.write_bytes(b"x")
    QEMU.own(made)
    assert (made.stat().st_uid, made.stat().st_gid, made.stat().st_mode & 0o777) == (
        QEMU.uid,
        QEMU.gid,
        0o600,
    )
    QEMU.own(made, read_only=True)
    assert made.stat().st_mode & 0o777 == 0o400
    QEMU.own_directory(reachable_tmp)
    st = reachable_tmp.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, QEMU.gid, 0o710)


def test_a_private_directory_is_made_and_only_qemus(reachable_tmp: Path) -> None:
    vnc = reachable_tmp / "vnc"
    QEMU.own_private_directory(vnc)  # made when missing
    vnc.chmod(0o755)
    QEMU.own_private_directory(vnc)  # and put right when it exists
    st = vnc.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (QEMU.uid, QEMU.gid, 0o700)
    elsewhere = reachable_tmp / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (reachable_tmp / "link").symlink_to(elsewhere)
    with pytest.raises(QemuUserError, match="not a directory the launcher made"):
        QEMU.own_private_directory(reachable_tmp / "link")
    assert (elsewhere.stat().st_uid, elsewhere.stat().st_mode & 0o777) == (0, 0o755)


def test_own_refuses_a_symlink_rather_than_chmod_what_it_names(reachable_tmp: Path) -> None:
    target = reachable_tmp / "target"
    target.write_bytes(b"x")
    target.chmod(0o644)
    (reachable_tmp / "link").symlink_to(target)
    with pytest.raises(QemuUserError, match="symbolic link"):
        QEMU.own(reachable_tmp / "link")
    assert (target.stat().st_uid, target.stat().st_mode & 0o777) == (0, 0o644)


def test_adopt_changes_only_what_qemu_could_not_open(reachable_tmp: Path) -> None:
    disk = reachable_tmp / "disk"
    disk.write_bytes(b"x")
    disk.chmod(0o644)
    assert not QEMU.adopt(disk, "the disk", write=False)  # readable by others: left as it is
    assert disk.stat().st_uid == 0
    assert QEMU.adopt(disk, "the disk", write=True)
    assert (disk.stat().st_uid, disk.stat().st_gid, disk.stat().st_mode & 0o777) == (
        QEMU.uid,
        QEMU.gid,
        0o644,
    )
    assert not QEMU.adopt(disk, "the disk", write=True)  # already its: nothing to do


def test_the_real_user_and_its_groups() -> None:
    """scripts/setup makes libvirt-qemu, a member of kvm, as Debian's packages do."""
    real = qemu_user.lookup()
    assert real.name == "libvirt-qemu" and real.uid != 0 and real.gid in real.groups
    assert real.label == f"+{real.uid}:+{real.gid}"
    if Path("/dev/kvm").exists():  # else libvirt re-probes QEMU at every launcher start
        assert grp.getgrnam("kvm").gr_gid in real.groups
        assert real.allows(os.stat("/dev/kvm"), write=True)


def test_a_missing_user_says_how_to_make_it() -> None:
    with pytest.raises(QemuUserError, match="kvd-no-such-user must exist"):
        qemu_user.lookup("kvd-no-such-user")


def test_adopt_leaves_a_file_qemu_could_not_reach_anyway(reachable_tmp: Path) -> None:
    closed = reachable_tmp / "closed"
    closed.mkdir(mode=0o700)
    disk = closed / "disk"
    disk.write_bytes(b"x")
    disk.chmod(0o600)
    with pytest.raises(QemuUserError, match="cannot pass through the directory"):
        QEMU.adopt(disk, "the disk", write=True)
    assert (disk.stat().st_uid, disk.stat().st_mode & 0o777) == (0, 0o600)
