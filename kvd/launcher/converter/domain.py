"""`convert`: a VMI and its launcher context → the libvirt domain XML, as a string.

The assembly is fixed and readable: identity (name, uuid, metadata), sizing (memory, vcpu),
SMBIOS, boot (os), features, cpu, clock, lifecycle actions, devices, the DAC seclabel —
libvirt's own order, so `virsh dumpxml` of the defined domain reads like what was sent.
Output is deterministic: the same VMI and context always give byte-identical XML (attribute
order is insertion order, no random values), so a launcher can compare before redefining and
tests can compare to golden files.

The VMI is defaulted again first (KubeVirt's defaults are idempotent), so a caller holding an
undefaulted VMI gets the same domain as one holding the defaulted one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api import defaults
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.converter import (
    clock,
    cpu,
    devices,
    features,
    firmware,
    memory,
    metadata,
    seclabel,
    smbios,
)
from kvd.launcher.converter.context import ConverterContext
from kvd.launcher.converter.errors import ConversionError


def domain_name(namespace: str, name: str) -> str:
    """`<namespace>_<name>`: unambiguous, as neither a namespace nor a name can contain `_`."""
    if not namespace or not name:
        raise ConversionError("a domain name needs both a namespace and a name")
    return f"{namespace}_{name}"


def convert(vmi: VirtualMachineInstance, ctx: ConverterContext) -> str:
    vmi = defaults.vmi(vmi)
    spec = vmi.spec
    meta = metadata.from_vmi(vmi, ctx)

    root = ET.Element("domain", type=ctx.domain_type)
    ET.SubElement(root, "name").text = domain_name(meta.namespace, meta.name)
    ET.SubElement(root, "uuid").text = smbios.domain_uuid(spec, ctx)
    ET.SubElement(root, "metadata").append(metadata.element(meta))
    root.append(memory.memory(spec))
    root.append(cpu.vcpu(spec))
    root.append(smbios.sysinfo(spec, ctx))
    root.append(firmware.os_element(spec, ctx))
    root.append(features.features(spec, emulated=ctx.domain_type == "qemu"))
    root.append(cpu.cpu(spec, ctx))
    root.append(clock.clock(spec))
    # kvd, not libvirt, decides what a guest reboot or poweroff means for the VMI: poweroff and
    # crash end the domain (the VMI Succeeds or Fails); a guest reboot stays inside the domain.
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    root.append(devices.devices(spec, ctx))
    root.append(seclabel.seclabel(ctx))

    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
