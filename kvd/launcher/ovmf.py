"""OVMF for EFI guests: found through QEMU's firmware descriptors; each VMI's own NVRAM.

Distributions describe their firmware builds in JSON descriptors (QEMU's
`docs/interop/firmware.json`), which libvirt reads for its own firmware autoselection too:
`/usr/share/qemu/firmware/*.json`, where a file of the same name in `/etc/qemu/firmware` takes
precedence, and file names sort by priority. `discover` takes, for x86_64 q35 guests, the first
split-flash build with a variable store template of each kind KubeVirt uses:

- plain UEFI: no Secure Boot, no SMM (Debian: OVMF_CODE_4M.fd + OVMF_VARS_4M.fd);
- Secure Boot: SMM and Microsoft's keys enrolled in the store, so the firmware runs
  Microsoft-signed loaders (shim) and refuses unsigned ones (Debian: OVMF_CODE_4M.ms.fd +
  OVMF_VARS_4M.ms.fd). A store without enrolled keys would boot anything: that is not Secure
  Boot, so such a build is never taken for it.

A missing or unreadable descriptor directory means no OVMF; the converter then refuses EFI VMIs
with a message saying so. Descriptors that do not parse are logged and skipped.

Each EFI VMI gets a copy of its build's template as its NVRAM, under `run_dir/nvram/` (this
module's alone), made before the domain is defined, kept across redefinitions (the guest's
boot entries live there) and removed with the domain by `cleanup`. It is named after the
template, so a VMI that switches between plain and Secure Boot never boots one build with the
other's store. QEMU runs unprivileged: the store is its user's (0600, in a directory it can only
pass through), and the build's code, shared by every VMI, must be readable by that user (it is
0644 in Debian's package).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kvd import logs
from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter import firmware
from kvd.launcher.converter.context import Firmware, OvmfBuild
from kvd.launcher.qemu_user import QemuUser

log = logs.get_logger(__name__)

# In precedence order: a file in a later directory replaces one of the same name before it.
DESCRIPTOR_DIRS: Final = (Path("/usr/share/qemu/firmware"), Path("/etc/qemu/firmware"))
NVRAM_DIR: Final = "nvram"
_ARCH: Final = "x86_64"
_Q35: Final = "pc-q35-x"  # a q35 machine of any version, to match the descriptors' globs
_SECURE: Final = frozenset({"secure-boot", "requires-smm", "enrolled-keys"})


@dataclass(frozen=True)
class _Descriptor:
    path: Path
    code: Path
    vars_template: Path
    features: frozenset[str]


def discover(dirs: Sequence[Path] = DESCRIPTOR_DIRS) -> Firmware:
    """The OVMF builds the descriptors in `dirs` offer for q35 (no NVRAM yet)."""
    descriptors = [d for d in (_load(p) for p in _descriptor_files(dirs)) if d is not None]
    plain = next((d for d in descriptors if not d.features & _SECURE), None)
    secure = next((d for d in descriptors if d.features >= _SECURE), None)
    found = Firmware(efi=_build(plain), efi_secure=_build(secure))
    log.info(
        "ovmf_discovered",
        efi=str(plain.path) if plain else None,
        efi_secure=str(secure.path) if secure else None,
    )
    return found


def prepare(
    spec: VirtualMachineInstanceSpec, builds: Firmware, *, run_dir: Path, qemu: QemuUser
) -> Firmware:
    """`builds` with this VMI's NVRAM: copied from the template the spec's build uses, once.

    A BIOS VMI, or one whose build this launcher lacks (the converter says so), gets none.
    Raises `QemuUserError` when QEMU's user could not read the build's code.
    """
    if firmware.efi(spec) is None:
        return builds
    build = builds.efi_secure if firmware.secure_boot(spec) else builds.efi
    if build is None:
        return builds
    qemu.check(build.code, "the OVMF code")
    target = run_dir.absolute() / NVRAM_DIR / build.vars_template.name
    if not target.exists():
        target.parent.mkdir(mode=0o700, exist_ok=True)
        qemu.own_directory(target.parent)
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(build.vars_template, partial)
        qemu.own(partial)
        partial.replace(target)  # a launcher killed mid-copy leaves no half store to boot
        log.info("nvram_created", path=str(target), template=str(build.vars_template))
    else:
        qemu.own(target)
    return Firmware(efi=builds.efi, efi_secure=builds.efi_secure, efi_vars=target)


def cleanup(run_dir: Path) -> None:
    """Remove every NVRAM of this run dir; nothing else. Idempotent."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(run_dir.absolute() / NVRAM_DIR)


def _descriptor_files(dirs: Sequence[Path]) -> list[Path]:
    by_name: dict[str, Path] = {}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            log.warning("ovmf_descriptors_unreadable", dir=str(directory), error=str(exc))
            continue
        by_name.update({n: directory / n for n in names if n.endswith(".json")})
    return [by_name[n] for n in sorted(by_name)]


def _load(path: Path) -> _Descriptor | None:
    try:
        data = json.loads(path.read_text())
        return _parse(path, data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ovmf_descriptor_skipped", path=str(path), error=str(exc))
        return None


def _parse(path: Path, data: Any) -> _Descriptor | None:
    """The descriptor if it is a build kvd can use for q35; None otherwise."""
    mapping = data["mapping"]
    if "uefi" not in data.get("interface-types", []) or mapping.get("device") != "flash":
        return None
    # "split" (code + separate store) is the default mode; "combined" and "stateless" builds
    # have no store template to copy.
    if mapping.get("mode", "split") != "split" or "nvram-template" not in mapping:
        return None
    code, store = mapping["executable"], mapping["nvram-template"]
    if code.get("format", "raw") != "raw" or store.get("format", "raw") != "raw":
        return None  # the converter writes raw pflash, libvirt's default
    if not any(
        target["architecture"] == _ARCH
        and any(fnmatch.fnmatchcase(_Q35, glob) for glob in target.get("machines", []))
        for target in data.get("targets", [])
    ):
        return None
    descriptor = _Descriptor(
        path=path,
        code=Path(code["filename"]),
        vars_template=Path(store["filename"]),
        features=frozenset(data.get("features", [])),
    )
    missing = [str(p) for p in (descriptor.code, descriptor.vars_template) if not p.is_file()]
    if missing:
        log.warning("ovmf_descriptor_files_missing", path=str(path), missing=missing)
        return None
    return descriptor


def _build(descriptor: _Descriptor | None) -> OvmfBuild | None:
    if descriptor is None:
        return None
    return OvmfBuild(code=descriptor.code, vars_template=descriptor.vars_template)
