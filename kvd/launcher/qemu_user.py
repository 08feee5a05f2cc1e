"""The unprivileged user QEMU runs as, and how the launcher makes its files usable by it.

QEMU runs as `libvirt-qemu` (Debian's user for it, as KubeVirt's launcher runs QEMU as uid 107
`qemu`), never as root, with no capabilities: a guest that escapes into QEMU then holds an
ordinary uid instead of root. One fixed user rather than a uid per pod, as KubeVirt does: in a
cluster each pod has its own mount, pid and network namespaces, so no QEMU sees another pod's
files, processes or taps; a per-pod uid would need an allocator on the node and a passwd entry
in each pod. (kvd's local node gives pods no pid namespace of their own, so there one VMI's
QEMU could signal or ptrace another's, both being libvirt-qemu: a per-pod pid namespace or uid
would close that; running as root, as before, closed nothing.)

Ownership is prepared by the launcher itself, not by libvirt (`dynamic_ownership = 0` in the
private libvirtd's qemu.conf; the domain's DAC `<seclabel>` carries this user with
`relabel='no'`). libvirt would chown every path of every disk, backing chain included — the
shared image store, the host's device node behind a block PVC — and chown it back to root when
the domain stops. The launcher instead sorts what QEMU opens into three kinds, each rule with
its tests:

- what the launcher creates (overlays, emptyDisks, cloud-init ISOs, EFI NVRAM, the private node
  of a block PVC, a DiskOrCreate hostDisk, the console log) is made owned by QEMU's user, mode
  0600 (0400 where only read), inside directories — the run dir too — owned root:<QEMU's
  group>, mode 0710: QEMU can pass through them, only root lists them, and nobody but root and
  QEMU's group gets in (launcher.sock stays root's, 0600); where QEMU creates a file itself
  (the VNC socket), the directory is QEMU's user's, 0700 (`own_private_directory`), so not
  even QEMU's group reaches the socket;
- what is only read and shared beyond this VMI (container disk images and their backing chain
  in the image store, kernel-boot files, OVMF code) is never changed: it must already be
  readable by QEMU's user (the image store's files are 0444 in 0755 directories), and a file
  that is not is refused with a message naming the file, its owner and mode (`check`);
- the VMI's own writable storage outside the run dir (a PVC's disk.img, a hostDisk file) is
  given to QEMU's user (`adopt`: chown of that one file, never its directory) when QEMU could not
  open it otherwise, and is not given back: another VMI sharing the disk runs as the same user,
  and restoring root would cut it off.

Access is computed from the files' owners and mode bits for QEMU's uid, group and supplementary
groups (as libvirt starts QEMU with them), so no check needs to run as that user. POSIX ACLs
are not read; a file that only an ACL opens is refused.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

QEMU_USER: Final = "libvirt-qemu"
# What scripts/setup runs where the user is missing (Debian's libvirt-daemon package creates it).
QEMU_USER_FIX: Final = (
    "getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu; "
    "getent passwd libvirt-qemu >/dev/null || useradd --system --gid libvirt-qemu "
    "--no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu"
)
DIR_MODE: Final = 0o710  # root:<QEMU's group>: QEMU passes through, only root lists or writes
FILE_MODE: Final = 0o600
PRIVATE_DIR_MODE: Final = 0o700  # QEMU's user's: where QEMU itself creates sockets
READ_ONLY_MODE: Final = 0o400
_READ, _WRITE, _SEARCH = 4, 2, 1


class QemuUserError(Exception):
    """QEMU's user does not exist here, or cannot open what it must; the message says which."""


@dataclass(frozen=True, kw_only=True)
class QemuUser:
    """Who QEMU runs as: its user, group, and every group it holds (supplementary included)."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]

    @property
    def label(self) -> str:
        """libvirt's DAC label for it: numeric, so no name lookup can differ."""
        return f"+{self.uid}:+{self.gid}"

    def __str__(self) -> str:
        return f"{self.name} (uid {self.uid}, gid {self.gid})"

    # --- what QEMU can do ---------------------------------------------------------------------

    def allows(self, st: os.stat_result, *, write: bool = False, search: bool = False) -> bool:
        """Whether the mode bits of `st` let QEMU read (and write, or search) it."""
        if self.uid == 0:
            return True
        want = _SEARCH if search else _READ | (_WRITE if write else 0)
        if st.st_uid == self.uid:
            bits = st.st_mode >> 6
        elif st.st_gid in self.groups:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        return bits & want == want

    def check(self, path: Path, what: str, *, write: bool = False) -> None:
        """Raise `QemuUserError` unless QEMU can reach `path` and open it (for writing too
        when `write`). `what` names the file for the message ("the kernel", "base image")."""
        self.check_reach(path, what)
        if not self.allows(path.stat(), write=write):
            access = "read and write" if write else "read"
            raise QemuUserError(
                f"{what} {path} is {_describe(path)}: QEMU, which runs as {self}, cannot "
                f"{access} it (make it readable by others, or owned by that user or group)"
            )

    def check_reach(self, path: Path, what: str) -> None:
        """Raise `QemuUserError` unless QEMU can pass through every directory to `path`."""
        if (blocked := self.blocking_directory(path)) is not None:
            raise QemuUserError(
                f"{what} {path} is out of reach of QEMU, which runs as {self}: it cannot pass "
                f"through the directory {blocked} ({_describe(blocked)})"
            )

    def blocking_directory(self, path: Path) -> Path | None:
        """The first directory on the way to `path` (as written, and after its symlinks) that
        QEMU cannot search; None when every one lets it through."""
        seen: set[Path] = set()
        for route in (path.absolute(), path.resolve()):
            for directory in reversed(route.parents):
                if directory in seen:
                    continue
                seen.add(directory)
                if not self.allows(directory.stat(), search=True):
                    return directory
        return None

    # --- what the launcher gives it -----------------------------------------------------------

    def own(self, path: Path, *, read_only: bool = False) -> None:
        """Make a file the launcher created QEMU's: owned by it, mode 0600 (0400 read-only)."""
        if path.is_symlink():  # chmod would follow it to whatever it names
            raise QemuUserError(f"{path} is a symbolic link, not a file the launcher made")
        os.chown(path, self.uid, self.gid, follow_symlinks=False)
        os.chmod(path, READ_ONLY_MODE if read_only else FILE_MODE)

    def own_directory(self, path: Path) -> None:
        """A directory of the launcher's that QEMU must pass through: root:<group>, 0710."""
        os.chown(path, 0, self.gid, follow_symlinks=False)
        os.chmod(path, DIR_MODE)

    def own_private_directory(self, path: Path) -> None:
        """A directory where QEMU creates files of its own (its VNC socket): made if missing,
        QEMU's user's, 0700, so nobody but that user and root can reach what is in it."""
        path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        if path.is_symlink() or not path.is_dir():
            raise QemuUserError(f"{path} is not a directory the launcher made")
        os.chown(path, self.uid, self.gid, follow_symlinks=False)
        os.chmod(path, PRIVATE_DIR_MODE)

    def adopt(self, path: Path, what: str, *, write: bool) -> bool:
        """Give the VMI's own disk file to QEMU's user if QEMU could not open it otherwise
        (the owner's read/write bits are kept or added); True when it changed anything. A file
        QEMU could not reach anyway is refused first (`check_reach`), and left as it is."""
        self.check_reach(path, what)
        st = path.stat()
        if self.allows(st, write=write):
            return False
        os.chown(path, self.uid, self.gid)
        wanted = stat.S_IRUSR | (stat.S_IWUSR if write else 0)
        if st.st_mode & wanted != wanted:
            os.chmod(path, stat.S_IMODE(st.st_mode) | wanted)
        return True


def lookup(name: str = QEMU_USER) -> QemuUser:
    """QEMU's user as this launcher's passwd and group databases say (libvirtd reads the same)."""
    try:
        user = pwd.getpwnam(name)
        grp.getgrgid(user.pw_gid)
    except KeyError:
        fix = QEMU_USER_FIX if name == QEMU_USER else f"create the user {name}"
        raise QemuUserError(
            f"user and group {name} must exist: QEMU runs as that user. Run scripts/setup, "
            f"or: {fix}"
        ) from None
    groups = frozenset(os.getgrouplist(name, user.pw_gid))
    return QemuUser(name=name, uid=user.pw_uid, gid=user.pw_gid, groups=groups)


def _describe(path: Path) -> str:
    """`drwx------ root:root`, as `ls -l` would say it."""
    st = path.stat()
    return f"{stat.filemode(st.st_mode)} {_name(st.st_uid, user=True)}:{_name(st.st_gid)}"


def _name(number: int, *, user: bool = False) -> str:
    try:
        return pwd.getpwuid(number).pw_name if user else grp.getgrgid(number).gr_name
    except KeyError:
        return str(number)
