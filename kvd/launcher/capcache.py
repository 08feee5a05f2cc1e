"""A host-wide seed store for libvirt's QEMU capability cache, so a private libvirtd starts fast.

A libvirtd with an empty `/var/cache/libvirt/qemu/capabilities/` probes every QEMU binary for 8-9 s;
with the files of an earlier daemon in place it is ready in about 0.1 s. Each launcher's
`/var/cache/libvirt` is private, so the files are kept in a store shared by all launchers of the
host (or baked into the launcher image), one entry per *identity*: everything libvirt itself checks
before trusting its cache (the ctime of QEMU's binaries, of libvirtd and of the driver modules it
loads, QEMU's module directory, the kernel, the CPU, and whether QEMU's user may open /dev/kvm —
libvirt probes and checks as that user, not as root). A changed identity is a different
key, so a stale entry is never offered: an upgraded QEMU or libvirt gets a new entry, probed by the
first launcher after it or by `capseed` (which scripts/setup runs), never the old one. Each entry
keeps its identity beside the files, and `seed` checks it too before copying.

libvirt still has the last word: it re-probes whenever it disagrees, and that rewrites the files,
which `probed` notices (their mtime or size moved); `store_back` then replaces the entry. One thing
libvirt compares is the *current CPU's* CPUID, which on CPUs with leaf 0x1f includes the x2APIC id:
a cache probed on CPU 0 is stale on CPU 1. So the daemon starts pinned to one CPU (see `Libvirtd`),
and that CPU's number is part of the key.

Entries are written whole, then published by atomically replacing a symlink, so a reader sees an old
complete entry or a new complete one, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from glob import glob
from pathlib import Path

from kvd.launcher import qemu_user
from kvd.logs import get_logger

log = get_logger(__name__)

DEFAULT_STORE = Path("/var/cache/kvd/libvirt-caps")
STORE_ENV = "KVD_CAPS_CACHE"
_CAPS_SUBDIR = Path("qemu/capabilities")

Stamps = dict[str, tuple[int, int]]  # file name → (mtime_ns, size)


def default_store() -> Path:
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


@dataclass(frozen=True)
class Seeding:
    key: str
    seeded: bool  # files were copied from the store
    stamps: Stamps  # the private cache right after seeding, to see whether libvirt rewrote it


class CapabilityCache:
    """Copies a matching entry into libvirt's private cache dir, and a fresh probe back."""

    def __init__(self, store: Path, *, cache_dir: Path, libvirtd: Path, cpu: int) -> None:
        self.store = store
        self.private = cache_dir / _CAPS_SUBDIR
        self._libvirtd = libvirtd
        self._cpu = cpu

    def identity(self) -> dict[str, object]:
        """What a capability cache is valid for: the inputs of libvirt's own validity checks."""
        qemu = qemu_user.lookup()  # the user libvirtd runs QEMU as (its qemu.conf)
        binaries = sorted(
            {
                os.path.realpath(p)
                for d in os.environ.get("PATH", "/usr/bin").split(os.pathsep)
                for p in glob(os.path.join(d, "qemu-system-*"))
            }
        )
        module_dirs = sorted(glob("/usr/lib/*/qemu") + glob("/usr/lib*/qemu"))
        # libvirt's "selfctime" is the newest ctime of libvirtd and of every driver module it loaded
        drivers = sorted(glob("/usr/lib*/*/libvirt/connection-driver/*.so"))
        drivers += sorted(glob("/usr/lib*/libvirt/connection-driver/*.so"))
        return {
            "libvirtd": _stat(str(self._libvirtd)),
            "libvirt_drivers": {d: _stat(d) for d in drivers},
            "qemu": {b: _stat(b) for b in binaries},
            "qemu_modules": {d: _stat(d) for d in module_dirs},
            "kernel": f"{os.uname().release} {os.uname().version}",
            "cpu": self._cpu,
            "cpuinfo": _cpuinfo(self._cpu),
            "qemu_user": qemu.label,
            "kvm_access": _kvm_access(qemu),
        }

    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def seed(self) -> Seeding:
        """Fill the private cache from the store when it holds this host's entry."""
        key = self.key()
        if os.path.exists("/dev/kvm") and not _kvm_access(qemu_user.lookup()):
            # libvirt probes QEMU with CAP_DAC_OVERRIDE (so the probe sees KVM) but checks its
            # cache as QEMU's user (who cannot open it): no cache ever passes, seeded or not.
            log.warning(
                "caps_cache_never_valid",
                hint="QEMU's user cannot open /dev/kvm, so libvirt re-probes QEMU at every start; "
                "give it the device's group (scripts/setup does, as udev does on Debian)",
            )
        self.private.mkdir(parents=True, exist_ok=True)
        entry = self.store / key
        seeded = False
        if _stamps(self.private):  # a restarted daemon in the same sandbox: its cache is there
            log.info("caps_present", key=key)
            return Seeding(key, False, _stamps(self.private))
        if entry.is_dir() and not self._matches(entry):
            log.warning("caps_entry_mismatch", entry=str(entry), hint="identity.json differs")
        elif entry.is_dir():
            try:
                for f in entry.glob("*.xml"):
                    shutil.copy2(f, self.private / f.name)  # copy2: keep mtime, see store_back
                seeded = True
            except OSError as e:  # an entry replaced while we read it: probe instead
                log.warning("caps_seed_unreadable", entry=str(entry), error=str(e))
                for f in self.private.glob("*.xml"):
                    f.unlink()
        log.info("caps_seeded" if seeded else "caps_not_seeded", key=key, store=str(self.store))
        return Seeding(key, seeded, _stamps(self.private))

    def probed(self, seeding: Seeding) -> bool:
        """Whether libvirt wrote its cache since `seed` (no seed, or it rejected the seed)."""
        now = _stamps(self.private)
        return bool(now) and now != seeding.stamps

    def store_back(self, seeding: Seeding) -> bool:
        """Publish the freshly probed private cache as this identity's entry."""
        if seeding.seeded:
            # The key covers what libvirt checks, so this should not happen: say so loudly.
            log.warning("caps_seed_rejected", key=seeding.key, hint="libvirt re-probed QEMU")
        try:
            self._publish(seeding.key)
        except OSError as e:  # a read-only store (baked into an image) is fine
            log.warning("caps_store_failed", store=str(self.store), error=str(e))
            return False
        log.info("caps_stored", key=seeding.key, store=str(self.store))
        return True

    def _matches(self, entry: Path) -> bool:
        """Whether the entry was made for this identity (its key says so; its record must too)."""
        try:
            recorded = json.loads((entry / "identity.json").read_text())
        except (OSError, ValueError):
            return False
        current: object = json.loads(json.dumps(self.identity()))  # tuples → lists, as stored
        return bool(recorded == current)

    def _publish(self, key: str) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.store))
        for f in self.private.glob("*.xml"):
            shutil.copy2(f, staging / f.name)
        (staging / "identity.json").write_text(json.dumps(self.identity(), indent=1) + "\n")
        staging.chmod(0o755)
        link = self.store / key
        old = link.resolve() if link.is_symlink() else None
        tmp_link = self.store / f".{key}.{uuid.uuid4().hex}.link"
        tmp_link.symlink_to(staging.name)
        os.replace(tmp_link, link)  # atomic: readers see the old entry or the new one
        if old is not None and old != staging:
            shutil.rmtree(old, ignore_errors=True)


def _stat(path: str) -> list[int] | None:
    """Size, mtime and ctime: libvirt compares ctimes, which a reinstall moves and mtime may not."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _stamps(directory: Path) -> Stamps:
    try:
        return {
            f.name: (st.st_mtime_ns, st.st_size)
            for f in directory.glob("*.xml")
            if (st := f.stat())
        }
    except FileNotFoundError:
        return {}


def _cpuinfo(cpu: int) -> dict[str, str]:
    """The identifying lines of one CPU in /proc/cpuinfo (not its clock, which moves)."""
    wanted = {"vendor_id", "cpu family", "model", "model name", "stepping", "microcode", "flags"}
    try:
        blocks = Path("/proc/cpuinfo").read_text().split("\n\n")
    except OSError:
        return {}
    for block in blocks:
        pairs = (line.partition(":") for line in block.splitlines())
        fields = {k.strip(): v.strip() for k, _, v in pairs}
        if fields.get("processor") == str(cpu):
            return {k: v for k, v in fields.items() if k in wanted}
    return {}


def _kvm_access(qemu: qemu_user.QemuUser) -> bool:
    """Whether QEMU's user may open /dev/kvm for reading and writing, as libvirt checks it."""
    try:
        return qemu.allows(os.stat("/dev/kvm"), write=True)
    except OSError:
        return False
