"""`<os>`: machine type, BIOS/EFI, kernel boot; `<uuid>` and SMBIOS `<sysinfo>`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from kvd.launcher.converter import firmware, smbios
from kvd.launcher.converter.context import Firmware, KernelBootFiles, OvmfBuild
from kvd.launcher.converter.errors import ContextError, ConversionError
from tests.launcher.converter.conftest import UID, assert_xml, context, spec

PLAIN = OvmfBuild(
    code=Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
    vars_template=Path("/usr/share/OVMF/OVMF_VARS_4M.fd"),
)
SECURE = OvmfBuild(
    code=Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd"),
    vars_template=Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
)
OVMF = Firmware(
    efi=PLAIN, efi_secure=SECURE, efi_vars=Path("/var/run/kvd/pods/0b2c6f4e/efivars.fd")
)
KERNEL = KernelBootFiles(
    kernel=Path("/var/run/kvd/pods/0b2c6f4e/boot/vmlinuz"),
    initrd=Path("/var/run/kvd/pods/0b2c6f4e/boot/initrd.img"),
)
KERNEL_BOOT = {
    "kernelBoot": {
        "kernelArgs": "console=ttyS0 quiet",
        "container": {
            "image": "kvd/kernel",
            "kernelPath": "/boot/vmlinuz",
            "initrdPath": "/boot/initrd.img",
        },
    }
}
TYPE_Q35 = '<type arch="x86_64" machine="q35">hvm</type>'
SMBIOS = '<smbios mode="sysinfo"/>'


@pytest.mark.parametrize(
    ("domain", "ctx", "expected"),
    [
        pytest.param({}, {}, f"<os>{TYPE_Q35}{SMBIOS}</os>", id="bios-default-q35"),
        pytest.param(
            {"machine": {"type": "pc"}},
            {},
            f'<os><type arch="x86_64" machine="pc">hvm</type>{SMBIOS}</os>',
            id="pc",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"bios": {"useSerial": True}}}},
            {},
            f'<os>{TYPE_Q35}{SMBIOS}<bios useserial="yes"/></os>',
            id="bios-serial",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"efi": {}}}},
            {"firmware": OVMF},
            f"<os>{TYPE_Q35}"
            '<loader readonly="yes" secure="no" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd'
            "</loader>"
            '<nvram template="/usr/share/OVMF/OVMF_VARS_4M.fd">'
            "/var/run/kvd/pods/0b2c6f4e/efivars.fd</nvram>"
            f"{SMBIOS}</os>",
            id="efi",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"efi": {"secureBoot": True}}}},
            {"firmware": OVMF},
            f"<os>{TYPE_Q35}"
            '<loader readonly="yes" secure="yes" type="pflash">'
            "/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"
            '<nvram template="/usr/share/OVMF/OVMF_VARS_4M.ms.fd">'
            "/var/run/kvd/pods/0b2c6f4e/efivars.fd</nvram>"
            f"{SMBIOS}</os>",
            id="efi-secure-boot",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"efi": {}}}},
            {"firmware": Firmware(efi=PLAIN)},
            f"<os>{TYPE_Q35}"
            '<loader readonly="yes" secure="no" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd'
            '</loader><nvram template="/usr/share/OVMF/OVMF_VARS_4M.fd"/>'
            f"{SMBIOS}</os>",
            id="efi-libvirt-places-the-store",
        ),
        pytest.param(
            {"firmware": KERNEL_BOOT},
            {"kernel_boot": KERNEL},
            f"<os>{TYPE_Q35}"
            "<kernel>/var/run/kvd/pods/0b2c6f4e/boot/vmlinuz</kernel>"
            "<initrd>/var/run/kvd/pods/0b2c6f4e/boot/initrd.img</initrd>"
            "<cmdline>console=ttyS0 quiet</cmdline>"
            f"{SMBIOS}</os>",
            id="kernel-boot-with-args",
        ),
        pytest.param(
            {"firmware": {"kernelBoot": {"container": {"image": "k", "kernelPath": "/vmlinuz"}}}},
            {"kernel_boot": KernelBootFiles(kernel=KERNEL.kernel, initrd=None)},
            f"<os>{TYPE_Q35}<kernel>/var/run/kvd/pods/0b2c6f4e/boot/vmlinuz</kernel>{SMBIOS}</os>",
            id="kernel-only",
        ),
    ],
)
def test_os(domain: dict[str, Any], ctx: dict[str, Any], expected: str) -> None:
    assert_xml(firmware.os_element(spec(domain), context(**ctx)), expected)


@pytest.mark.parametrize(
    ("domain", "ctx", "error", "message"),
    [
        pytest.param(
            {"firmware": {"bootloader": {"efi": {}}}},
            {},
            ConversionError,
            r"bootloader\.efi: EFI boot needs OVMF, but none is installed for this launcher; "
            "install OVMF or boot with BIOS",
            id="efi-without-ovmf",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"efi": {"secureBoot": True}}}},
            {"firmware": Firmware(efi=PLAIN, efi_vars=OVMF.efi_vars)},
            ConversionError,
            r"efi\.secureBoot: EFI boot needs OVMF with Secure Boot \(SMM, Microsoft's keys "
            r"enrolled\), but none is installed",
            id="secure-boot-without-secure-ovmf",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"efi": {"secureBoot": True}}}, "machine": {"type": "pc"}},
            {"firmware": OVMF},
            ConversionError,
            r"secureBoot needs the q35 machine type \(SMM\), not 'pc'",
            id="secure-boot-on-pc",
        ),
        pytest.param(
            {"firmware": {"kernelBoot": {"container": {"image": "k", "initrdPath": "/initrd"}}}},
            {"kernel_boot": KernelBootFiles(kernel=None, initrd=KERNEL.initrd)},
            ConversionError,
            r"an initrd cannot boot without a kernel; set kernelPath",
            id="initrd-without-kernel",
        ),
        pytest.param(
            {
                "firmware": {"bootloader": {"bios": {"useSerial": True}}},
                "devices": {"autoattachSerialConsole": False},
            },
            {},
            ConversionError,
            r"bios\.useSerial needs the serial console, but .*autoattachSerialConsole is false",
            id="bios-serial-without-serial-port",
        ),
        pytest.param(
            {"firmware": KERNEL_BOOT},
            {},
            ContextError,
            r"kernelBoot\.container is set but the launcher context has no kernel boot files",
            id="kernel-boot-files-missing",
        ),
        pytest.param(
            {},
            {"kernel_boot": KERNEL},
            ContextError,
            r"context has kernel boot files but spec\.domain\.firmware\.kernelBoot\.container",
            id="kernel-boot-files-unasked",
        ),
    ],
)
def test_os_refused(
    domain: dict[str, Any], ctx: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        firmware.os_element(spec(domain), context(**ctx))


DERIVED = str(uuid.uuid5(smbios.DOMAIN_UUID_NAMESPACE, UID))


@pytest.mark.parametrize(
    ("firmware_spec", "domain_uuid", "entries"),
    [
        pytest.param(None, DERIVED, f'<entry name="uuid">{DERIVED}</entry>', id="derived"),
        pytest.param(
            {"uuid": "5D307CA9-B3EF-428C-8861-06E72D69F223"},
            "5d307ca9-b3ef-428c-8861-06e72d69f223",
            '<entry name="uuid">5d307ca9-b3ef-428c-8861-06e72d69f223</entry>',
            id="from-spec-canonicalised",
        ),
        pytest.param(
            {"serial": "kvd-0001"},
            DERIVED,
            f'<entry name="uuid">{DERIVED}</entry><entry name="serial">kvd-0001</entry>',
            id="serial",
        ),
    ],
)
def test_uuid_and_smbios(
    firmware_spec: dict[str, Any] | None, domain_uuid: str, entries: str
) -> None:
    s = spec({"firmware": firmware_spec} if firmware_spec else None)
    assert smbios.domain_uuid(s, context()) == domain_uuid
    assert_xml(
        smbios.sysinfo(s, context()), f'<sysinfo type="smbios"><system>{entries}</system></sysinfo>'
    )


def test_derived_uuid_is_stable_and_per_vmi() -> None:
    """The same VMI uid always gives the same domain; another uid another one."""
    s = spec()
    assert smbios.domain_uuid(s, context()) == smbios.domain_uuid(s, context())
    assert smbios.domain_uuid(s, context()) != smbios.domain_uuid(s, context(vmi_uid="other"))
    # Frozen: changing the namespace would silently re-identify every existing domain.
    assert DERIVED == "071db614-3dfb-5e12-81de-d0d2b12380a8"
