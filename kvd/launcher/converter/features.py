"""`<features>`: ACPI (on unless the spec turns it off), the APIC, and SMM for Secure Boot.

ACPI is what makes a graceful shutdown possible: without it the guest never sees the power
button, and a guest poweroff does not end the domain (MACHINE.md). The APIC is what every
x86_64 guest expects. SMM keeps OVMF's Secure Boot variables out of the guest's reach; libvirt
refuses a secure loader without it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter import firmware


def acpi_enabled(spec: VirtualMachineInstanceSpec) -> bool:
    """KubeVirt: absent means on, and an empty `acpi: {}` means on too."""
    features = spec.domain.features
    acpi = features.acpi if features else None
    return acpi is None or acpi.enabled is not False


def features(spec: VirtualMachineInstanceSpec) -> ET.Element:
    element = ET.Element("features")
    if acpi_enabled(spec):
        ET.SubElement(element, "acpi")
    ET.SubElement(element, "apic")
    if firmware.secure_boot(spec):
        ET.SubElement(element, "smm", state="on")
    return element
