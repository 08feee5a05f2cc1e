"""The domain `<uuid>` and the SMBIOS `<sysinfo>` the guest reads it from.

The UUID is `spec.domain.firmware.uuid` when the user set one (KubeVirt's field, kept for
guests that license or identify themselves by it); otherwise a UUIDv5 of the VMI's uid in a
kvd namespace, so re-converting the same VMI (a restarted launcher, a redefine) always gives
the same domain UUID, while two VMIs with the same name at different times do not collide.
libvirt insists the SMBIOS UUID equals the domain's, so both come from `domain_uuid`.
`spec.domain.chassis` becomes the SMBIOS chassis (type 3) strings.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Final

from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter.context import ConverterContext

# uuid5(NAMESPACE_URL, "https://kvd.dev/launcher/v1/domain-uuid"), frozen: changing it would
# give every existing VMI's domain a new UUID.
DOMAIN_UUID_NAMESPACE: Final = uuid.UUID("ff18d4ca-be7f-541b-88e1-0df691aecfaa")


def domain_uuid(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> str:
    firmware = spec.domain.firmware
    if firmware is not None and firmware.uuid is not None:
        return str(uuid.UUID(firmware.uuid))  # canonical lowercase form
    return str(uuid.uuid5(DOMAIN_UUID_NAMESPACE, ctx.vmi_uid))


def sysinfo(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> ET.Element:
    element = ET.Element("sysinfo", type="smbios")
    system = ET.SubElement(element, "system")
    ET.SubElement(system, "entry", name="uuid").text = domain_uuid(spec, ctx)
    firmware = spec.domain.firmware
    if firmware is not None and firmware.serial is not None:
        ET.SubElement(system, "entry", name="serial").text = firmware.serial
    chassis = spec.domain.chassis
    entries = [
        (name, value)
        for name, value in (
            ("manufacturer", chassis.manufacturer if chassis else None),
            ("version", chassis.version if chassis else None),
            ("serial", chassis.serial if chassis else None),
            ("asset", chassis.asset if chassis else None),
            ("sku", chassis.sku if chassis else None),
        )
        if value is not None
    ]
    if entries:
        section = ET.SubElement(element, "chassis")
        for name, value in entries:
            ET.SubElement(section, "entry", name=name).text = value
    return element
