"""`<memory>`: the guest's RAM, from `domain.memory.guest` (defaulted from the request).

Kubernetes quantities may be decimal (`1024M` is not a whole number of KiB); QEMU sizes RAM
in MiB-aligned blocks anyway, so the size is rounded *up* to a whole MiB — the guest never gets
less than was asked for — and written in KiB, libvirt's native unit.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter.errors import ConversionError

KIB = 1024
MIB = 1024 * KIB


def guest_memory_kib(spec: VirtualMachineInstanceSpec) -> int:
    memory = spec.domain.memory
    if memory is None or memory.guest is None:
        raise ConversionError(
            "spec.domain.memory.guest is not set (and no resources.requests.memory to default "
            "it from); the converter needs a defaulted, validated VMI"
        )
    size = memory.guest.bytes()
    if size <= 0:
        raise ConversionError(f"spec.domain.memory.guest must be positive, got {memory.guest}")
    mib = -(-size // MIB)  # ceiling division
    return mib * (MIB // KIB)


def memory(spec: VirtualMachineInstanceSpec) -> ET.Element:
    element = ET.Element("memory", unit="KiB")
    element.text = str(guest_memory_kib(spec))
    return element
