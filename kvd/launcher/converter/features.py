"""`<features>`: ACPI and the APIC (on unless the spec turns them off), and SMM.

ACPI is what makes a graceful shutdown possible: without it the guest never sees the power
button, and a guest poweroff does not end the domain (MACHINE.md). The APIC is what every
x86_64 guest expects; `apic.endOfInterrupt` adds EOI notification. SMM keeps OVMF's Secure
Boot variables out of the guest's reach, so Secure Boot turns it on (libvirt refuses a secure
loader without it); `features.smm` turns it on or off explicitly, and unset leaves it to the
machine type.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter import firmware

# QEMU's TCG keeps translated code in a cache that it sizes at 1 GiB by default and that fills
# as the guest runs: most of an emulated VM's memory beyond guest RAM. 32 MiB holds what a
# small guest's boot translates, at the price of retranslating more for big ones.
TCG_TB_CACHE_MIB = 32


def acpi_enabled(spec: VirtualMachineInstanceSpec) -> bool:
    """KubeVirt: absent means on, and an empty `acpi: {}` means on too."""
    features = spec.domain.features
    acpi = features.acpi if features else None
    return acpi is None or acpi.enabled is not False


def smm(spec: VirtualMachineInstanceSpec) -> bool | None:
    """On for Secure Boot or when asked; off when turned off; None: the machine's default."""
    features = spec.domain.features
    requested = features.smm if features else None
    if requested is not None:
        return requested.enabled is not False
    return True if firmware.secure_boot(spec) else None


def features(spec: VirtualMachineInstanceSpec, *, emulated: bool = False) -> ET.Element:
    element = ET.Element("features")
    if acpi_enabled(spec):
        ET.SubElement(element, "acpi")
    apic = spec.domain.features.apic if spec.domain.features else None
    if apic is None or apic.enabled is not False:
        attributes = {"eoi": "on"} if apic is not None and apic.end_of_interrupt else {}
        ET.SubElement(element, "apic", attributes)
    state = smm(spec)
    if state is not None:
        ET.SubElement(element, "smm", state="on" if state else "off")
    if emulated:
        tcg = ET.SubElement(element, "tcg")
        ET.SubElement(tcg, "tb-cache", unit="MiB").text = str(TCG_TB_CACHE_MIB)
    return element
