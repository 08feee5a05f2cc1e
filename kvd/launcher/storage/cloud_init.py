"""cloud-init data disks: NoCloud (`cidata`) and ConfigDrive (`config-2`) ISOs.

What goes on them follows KubeVirt. NoCloud: `meta-data` (YAML: `instance-id` is the VMI's
UID, so a new VMI is a new instance to cloud-init while a restarted launcher is not;
`local-hostname` is spec.hostname or the VMI's name), `user-data` (always present, possibly
empty: NoCloud requires the file), and `network-config` when network data is given.
ConfigDrive: `openstack/latest/meta_data.json` (`uuid`, `hostname`, `name`),
`openstack/latest/user_data`, and `openstack/latest/network_data.json` when given. Base64
fields are decoded here; the guest reads plain bytes.

Contents depend on the VMI alone, so an existing ISO whose label and files already match is
left untouched (same inode, same mtime); one that does not match is replaced atomically — it is
derived data, unlike the disks the guest writes. QEMU's user owns it, read-only (0400).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Final

import yaml

from kvd.api.vmi import (
    CloudInitConfigDriveSource,
    CloudInitNoCloudSource,
    VirtualMachineInstance,
)
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.qemu_user import QemuUser
from kvd.launcher.storage import iso
from kvd.launcher.storage.errors import StorageError
from kvd.launcher.storage.journal import Journal

NOCLOUD_LABEL: Final = "cidata"
CONFIG_DRIVE_LABEL: Final = "config-2"
CONFIG_DRIVE_DIR: Final = "openstack/latest"


def nocloud_files(
    name: str, source: CloudInitNoCloudSource, vmi: VirtualMachineInstance
) -> dict[str, bytes]:
    uid, hostname = _identity(name, vmi)
    meta = {"instance-id": uid, "local-hostname": hostname}
    files = {
        "meta-data": yaml.safe_dump(meta, sort_keys=False).encode(),
        "user-data": _data(name, source.user_data, source.user_data_base64, "userData") or b"",
    }
    network = _data(name, source.network_data, source.network_data_base64, "networkData")
    if network is not None:
        files["network-config"] = network
    return files


def config_drive_files(
    name: str, source: CloudInitConfigDriveSource, vmi: VirtualMachineInstance
) -> dict[str, bytes]:
    uid, hostname = _identity(name, vmi)
    meta = {"uuid": uid, "hostname": hostname, "name": vmi.metadata.name}
    user = _data(name, source.user_data, source.user_data_base64, "userData") or b""
    files = {
        f"{CONFIG_DRIVE_DIR}/meta_data.json": (json.dumps(meta, sort_keys=True) + "\n").encode(),
        f"{CONFIG_DRIVE_DIR}/user_data": user,
    }
    network = _data(name, source.network_data, source.network_data_base64, "networkData")
    if network is not None:
        files[f"{CONFIG_DRIVE_DIR}/network_data.json"] = network
    return files


def prepare(
    name: str,
    *,
    label: str,
    files: dict[str, bytes],
    target: Path,
    journal: Journal,
    qemu: QemuUser,
) -> DiskSource:
    """Reuse `target` if it already holds exactly `label` and `files`, else (re)write it."""
    source = DiskSource(path=target, format="raw", read_only=True, is_iso=True)
    if target.is_file():
        try:
            if iso.read(target) == (label, files):
                qemu.own(target, read_only=True)
                return source
        except iso.ISOReadError:
            pass  # a stray or damaged file: derived data, rewritten below
    journal.make_dirs(target.parent)
    with journal.staged(target) as partial:
        iso.write(partial, label=label, files=files)
        qemu.own(partial, read_only=True)
    return source


def _identity(name: str, vmi: VirtualMachineInstance) -> tuple[str, str]:
    uid, vmi_name = vmi.metadata.uid, vmi.metadata.name
    if not uid or not vmi_name:
        raise StorageError(
            name,
            "cloud-init needs the VMI's metadata.uid and metadata.name (instance-id and hostname)",
            reason="CloudInitInvalid",
        )
    return uid, vmi.spec.hostname or vmi_name


def _data(name: str, plain: str | None, encoded: str | None, field: str) -> bytes | None:
    if plain is not None:
        return plain.encode()
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        # API validation refuses this already; the launcher may get a VMI that skipped it.
        raise StorageError(
            name, f"{field}Base64 is not valid base64: {exc}", reason="CloudInitInvalid"
        ) from exc
