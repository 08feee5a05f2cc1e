"""OVMF discovery from QEMU's firmware descriptors, and each VMI's NVRAM (files only)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from kvd.api import kinds
from kvd.api.vmi import VirtualMachineInstance, VirtualMachineInstanceSpec
from kvd.launcher import ovmf
from kvd.launcher.converter.context import Firmware, OvmfBuild
from kvd.launcher.qemu_user import QemuUserError
from tests.launcher.conftest import QEMU


def _descriptor(
    code: Path,
    store: Path | None,
    *features: str,
    machines: tuple[str, ...] = ("pc-q35-*",),
    arch: str = "x86_64",
    mode: str | None = None,
) -> dict[str, Any]:
    mapping: dict[str, Any] = {"device": "flash", "executable": {"filename": str(code)}}
    if store is not None:
        mapping["nvram-template"] = {"filename": str(store), "format": "raw"}
    if mode is not None:
        mapping["mode"] = mode
    return {
        "interface-types": ["uefi"],
        "mapping": mapping,
        "targets": [{"architecture": arch, "machines": list(machines)}],
        "features": list(features),
    }


@pytest.fixture
def files(reachable_tmp: Path) -> dict[str, Path]:
    """Firmware files to point descriptors at; each must exist for a descriptor to count."""
    made = {}
    for name in ("CODE.fd", "VARS.fd", "CODE.secboot.fd", "VARS.ms.fd", "OTHER.fd"):
        made[name] = reachable_tmp / "fw" / name
        made[name].parent.mkdir(exist_ok=True)
        made[name].write_bytes(name.encode())
        made[name].chmod(0o644)  # as Debian's ovmf package installs them
    return made


def _write(directory: Path, name: str, content: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (directory / name).write_text(text)


SECURE = ("secure-boot", "requires-smm", "enrolled-keys")


def test_debians_ovmf_as_installed() -> None:
    """This machine's descriptors (Debian's ovmf, installed by scripts/setup)."""
    found = ovmf.discover()
    assert found.efi == OvmfBuild(
        code=Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
        vars_template=Path("/usr/share/OVMF/OVMF_VARS_4M.fd"),
    )
    assert found.efi_secure == OvmfBuild(
        code=Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd"),
        vars_template=Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
    )
    assert found.efi_vars is None


def test_the_first_fitting_descriptor_of_each_kind_wins(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    usr, etc = tmp_path / "usr", tmp_path / "etc"
    # Secure Boot without enrolled keys boots anything: never taken for either kind
    empty = _descriptor(files["CODE.secboot.fd"], files["VARS.fd"], *SECURE[:2])
    _write(usr, "10-secure-empty.json", empty)
    secure = _descriptor(files["CODE.secboot.fd"], files["VARS.ms.fd"], *SECURE)
    _write(usr, "20-secure.json", secure)
    _write(usr, "30-plain.json", _descriptor(files["CODE.fd"], files["VARS.fd"]))
    _write(usr, "40-plain-later.json", _descriptor(files["OTHER.fd"], files["VARS.fd"]))
    found = ovmf.discover((usr, etc))
    assert found.efi == OvmfBuild(code=files["CODE.fd"], vars_template=files["VARS.fd"])
    assert found.efi_secure == OvmfBuild(
        code=files["CODE.secboot.fd"], vars_template=files["VARS.ms.fd"]
    )

    # /etc/qemu/firmware replaces a file of the same name, and its names sort in too
    _write(etc, "30-plain.json", _descriptor(files["OTHER.fd"], files["VARS.fd"], "amd-sev"))
    _write(etc, "05-secure.json", _descriptor(files["OTHER.fd"], files["VARS.ms.fd"], *SECURE))
    found = ovmf.discover((usr, etc))
    assert found.efi is not None and found.efi.code == files["OTHER.fd"]
    assert found.efi_secure is not None and found.efi_secure.code == files["OTHER.fd"]


@pytest.mark.parametrize(
    "unfit",
    [
        pytest.param({"machines": ("pc-i440fx-*",)}, id="no-q35"),
        pytest.param({"arch": "aarch64", "machines": ("virt-*",)}, id="other-arch"),
        pytest.param({"mode": "stateless"}, id="stateless"),
        pytest.param({"store": None}, id="no-store-template"),
        pytest.param({"code": Path("/nonexistent/CODE.fd")}, id="file-missing"),
        pytest.param({"interface-types": ["bios"]}, id="bios"),
        pytest.param({"format": "qcow2"}, id="qcow2"),
        pytest.param({"text": "{not json"}, id="not-json"),
        pytest.param({"text": '{"mapping": {}}'}, id="not-a-descriptor"),
    ],
)
def test_descriptors_kvd_cannot_use_are_skipped(
    tmp_path: Path, files: dict[str, Path], unfit: dict[str, Any]
) -> None:
    kwargs = {k: v for k, v in unfit.items() if k in ("machines", "arch", "mode")}
    content: Any = _descriptor(
        unfit.get("code", files["CODE.fd"]), unfit.get("store", files["VARS.fd"]), **kwargs
    )
    if "interface-types" in unfit:
        content["interface-types"] = unfit["interface-types"]
    if "format" in unfit:
        content["mapping"]["executable"]["format"] = unfit["format"]
    _write(tmp_path / "d", "10-unfit.json", unfit.get("text", content))
    _write(tmp_path / "d", "20-fit.json", _descriptor(files["OTHER.fd"], files["VARS.fd"]))
    assert ovmf.discover((tmp_path / "d",)).efi == OvmfBuild(
        code=files["OTHER.fd"], vars_template=files["VARS.fd"]
    )


def test_no_descriptors_no_ovmf(tmp_path: Path) -> None:
    assert ovmf.discover((tmp_path / "missing", tmp_path)) == Firmware()


def _spec(firmware: dict[str, Any] | None) -> VirtualMachineInstanceSpec:
    domain: dict[str, Any] = {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}
    if firmware is not None:
        domain["firmware"] = firmware
    vmi = kinds.load(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "v", "namespace": "ns", "uid": "u"},
            "spec": {"domain": domain},
        }
    )
    assert isinstance(vmi, VirtualMachineInstance)
    return vmi.spec


def test_each_efi_vmi_gets_its_own_store_from_its_builds_template(
    reachable_tmp: Path, files: dict[str, Path]
) -> None:
    builds = Firmware(
        efi=OvmfBuild(code=files["CODE.fd"], vars_template=files["VARS.fd"]),
        efi_secure=OvmfBuild(code=files["CODE.secboot.fd"], vars_template=files["VARS.ms.fd"]),
    )
    run = reachable_tmp / "run"
    run.mkdir()
    assert ovmf.prepare(_spec(None), builds, run_dir=run, qemu=QEMU) == builds  # BIOS: no store
    assert not (run / "nvram").exists()

    plain = ovmf.prepare(_spec({"bootloader": {"efi": {}}}), builds, run_dir=run, qemu=QEMU)
    assert plain.efi_vars == run / "nvram" / "VARS.fd"
    assert plain.efi_vars.read_bytes() == b"VARS.fd"
    # QEMU's user writes it, through a directory only it (and root) may pass
    assert _owner(plain.efi_vars) == (QEMU.uid, QEMU.gid, 0o600)
    assert _owner(run / "nvram") == (0, QEMU.gid, 0o710)
    assert _owner(files["VARS.fd"]) == (0, 0, 0o644), "the shared template is never changed"

    # the guest writes its store; defining again keeps what it wrote
    plain.efi_vars.write_bytes(b"boot entries")
    again = ovmf.prepare(_spec({"bootloader": {"efi": {}}}), builds, run_dir=run, qemu=QEMU)
    assert again == plain and plain.efi_vars.read_bytes() == b"boot entries"

    # Secure Boot has its own store, with the keys; never the plain one
    secure = ovmf.prepare(
        _spec({"bootloader": {"efi": {"secureBoot": True}}}), builds, run_dir=run, qemu=QEMU
    )
    assert secure.efi_vars == run / "nvram" / "VARS.ms.fd"
    assert secure.efi_vars.read_bytes() == b"VARS.ms.fd"

    ovmf.cleanup(run)
    assert list(run.iterdir()) == []
    ovmf.cleanup(run)  # idempotent


def test_no_build_no_store(tmp_path: Path) -> None:
    """The converter refuses such a VMI, saying OVMF is missing; nothing is made for it."""
    efi = _spec({"bootloader": {"efi": {}}})
    prepared = ovmf.prepare(efi, Firmware(), run_dir=tmp_path, qemu=QEMU)
    assert prepared == Firmware()
    assert list(tmp_path.iterdir()) == []


def test_code_qemu_cannot_read_is_refused_and_left_alone(
    reachable_tmp: Path, files: dict[str, Path]
) -> None:
    files["CODE.fd"].chmod(0o600)
    builds = Firmware(efi=OvmfBuild(code=files["CODE.fd"], vars_template=files["VARS.fd"]))
    run = reachable_tmp / "run"
    run.mkdir()
    with pytest.raises(QemuUserError, match=r"the OVMF code .*CODE\.fd is -rw------- root:root"):
        ovmf.prepare(_spec({"bootloader": {"efi": {}}}), builds, run_dir=run, qemu=QEMU)
    assert _owner(files["CODE.fd"]) == (0, 0, 0o600)
    assert list(run.iterdir()) == []


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
