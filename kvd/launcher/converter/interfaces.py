"""`<interface>`s: each spec interface whose tap the network code prepared.

The network code creates and wires the tap before the domain starts (KubeVirt's bridge and
masquerade bindings), so libvirt gets `type='ethernet'` with `managed='no'`: it opens the
existing tap and changes nothing on the host. An interface without a context entry is left
out; the network code decides which interfaces it can serve, not the converter.

The MAC is the spec's (normalised to libvirt's lowercase, colon-separated form), else the
one the network code chose, else libvirt's random one. The NIC's option ROM is off: kvd's API
has no network boot, and skipping iPXE saves firmware time and the ROM files' presence.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api import defaults
from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter.alias import user_alias
from kvd.launcher.converter.context import ConverterContext


def normalise_mac(mac: str) -> str:
    return mac.replace("-", ":").lower()


def interfaces(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> list[ET.Element]:
    elements = []
    for interface in spec.domain.devices.interfaces:
        target = ctx.interfaces.get(interface.name)
        if target is None:
            continue
        element = ET.Element("interface", type="ethernet")
        mac = interface.mac_address or target.mac
        if mac is not None:
            ET.SubElement(element, "mac", address=normalise_mac(mac))
        ET.SubElement(element, "target", dev=target.tap, managed="no")
        model = interface.model or defaults.DEFAULT_INTERFACE_MODEL
        ET.SubElement(element, "model", type=model)
        ET.SubElement(element, "alias", name=user_alias(interface.name))
        ET.SubElement(element, "rom", enabled="no")
        elements.append(element)
    return elements
