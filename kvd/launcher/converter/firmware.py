"""`<os>`: machine type, firmware (SeaBIOS or OVMF), direct kernel boot, SMBIOS source.

BIOS is the default and needs nothing: libvirt's absence of a `<loader>` means SeaBIOS. EFI
needs an OVMF build (code + variable store template), which the launcher finds and passes in
the context with the VMI's own copy of the store; where it found none, conversion fails with a
message saying so instead of producing a domain that cannot start. Secure Boot takes its own
build, as KubeVirt does: the SMM-enabled code with Microsoft's keys enrolled in the store (the
keys are what makes the firmware refuse unsigned loaders), on the q35 machine (libvirt refuses
it on pc).

SeaBIOS output on the serial port needs that port: libvirt refuses `useserial` without one.

Kernel boot takes the kernel and initrd the pod extracted (context) and the command line from
the spec. QEMU refuses an initrd without a kernel, so that is refused here, with the field.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import EFI, Firmware, VirtualMachineInstanceSpec
from kvd.launcher.converter import console, machine
from kvd.launcher.converter.context import ConverterContext
from kvd.launcher.converter.errors import ContextError, ConversionError

_EFI_FIELD = "spec.domain.firmware.bootloader.efi"
_KERNEL_BOOT_FIELD = "spec.domain.firmware.kernelBoot"


def _firmware(spec: VirtualMachineInstanceSpec) -> Firmware:
    return spec.domain.firmware or Firmware()


def efi(spec: VirtualMachineInstanceSpec) -> EFI | None:
    bootloader = _firmware(spec).bootloader
    return bootloader.efi if bootloader else None


def secure_boot(spec: VirtualMachineInstanceSpec) -> bool:
    """Only an explicit `secureBoot: true`: kvd's API does not default it (KubeVirt: true)."""
    requested = efi(spec)
    return requested is not None and requested.secure_boot is True


def os_element(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> ET.Element:
    element = ET.Element("os")
    element.append(machine.os_type(spec))
    if efi(spec) is not None:
        element.extend(_efi(spec, ctx))
    element.extend(_kernel_boot(spec, ctx))
    # SMBIOS values (uuid, serial) come from the domain's <sysinfo>, see smbios.py.
    ET.SubElement(element, "smbios", mode="sysinfo")
    bootloader = _firmware(spec).bootloader
    bios = bootloader.bios if bootloader else None
    if bios is not None and bios.use_serial:
        if not console.serial_console_enabled(spec):
            raise ConversionError(
                "spec.domain.firmware.bootloader.bios.useSerial needs the serial console, but "
                "spec.domain.devices.autoattachSerialConsole is false"
            )
        ET.SubElement(element, "bios", useserial="yes")
    return element


def _efi(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> list[ET.Element]:
    secure = secure_boot(spec)
    build = ctx.firmware.efi_secure if secure else ctx.firmware.efi
    if build is None:
        flavour = "OVMF with Secure Boot (SMM, Microsoft's keys enrolled)" if secure else "OVMF"
        raise ConversionError(
            f"{_EFI_FIELD}{'.secureBoot' if secure else ''}: EFI boot needs {flavour}, "
            "but none is installed for this launcher; install OVMF or boot with BIOS"
        )
    if secure and not machine.is_q35(machine.machine_type(spec)):
        raise ConversionError(
            f"{_EFI_FIELD}.secureBoot needs the q35 machine type (SMM), "
            f"not {machine.machine_type(spec)!r}"
        )
    loader = ET.Element("loader", readonly="yes", secure="yes" if secure else "no", type="pflash")
    loader.text = str(build.code)
    # libvirt copies the template into place when the VMI's store does not exist (yet), so
    # the template also says where a reset store comes from.
    nvram = ET.Element("nvram", template=str(build.vars_template))
    if ctx.firmware.efi_vars is not None:
        nvram.text = str(ctx.firmware.efi_vars)
    return [loader, nvram]


def _kernel_boot(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> list[ET.Element]:
    kernel_boot = _firmware(spec).kernel_boot
    container = kernel_boot.container if kernel_boot else None
    files = ctx.kernel_boot
    if container is None:
        if kernel_boot is not None and kernel_boot.kernel_args is not None:
            raise ConversionError(
                f"{_KERNEL_BOOT_FIELD}.kernelArgs needs {_KERNEL_BOOT_FIELD}.container.kernelPath"
            )
        if files is not None:
            raise ContextError(
                f"the launcher context has kernel boot files but {_KERNEL_BOOT_FIELD}.container "
                "is not set: context and VMI disagree"
            )
        return []
    if files is None:
        raise ContextError(
            f"{_KERNEL_BOOT_FIELD}.container is set but the launcher context has no kernel boot "
            "files: the kernel and initrd were not extracted"
        )
    if container.kernel_path is not None and files.kernel is None:
        raise ContextError(f"{_KERNEL_BOOT_FIELD}.container.kernelPath: no kernel extracted")
    if container.initrd_path is not None and files.initrd is None:
        raise ContextError(f"{_KERNEL_BOOT_FIELD}.container.initrdPath: no initrd extracted")
    if files.kernel is None:
        raise ConversionError(
            f"{_KERNEL_BOOT_FIELD}.container: an initrd cannot boot without a kernel; "
            "set kernelPath"
        )
    elements = [ET.Element("kernel")]
    elements[0].text = str(files.kernel)
    if files.initrd is not None:
        initrd = ET.Element("initrd")
        initrd.text = str(files.initrd)
        elements.append(initrd)
    if kernel_boot is not None and kernel_boot.kernel_args:
        cmdline = ET.Element("cmdline")
        cmdline.text = kernel_boot.kernel_args
        elements.append(cmdline)
    return elements
