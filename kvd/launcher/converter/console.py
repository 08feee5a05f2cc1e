"""The serial console: `<serial>` on a unix socket QEMU listens on, mirrored to a log file.

The launcher's Console RPC connects to the socket; the log file is what the pod's
`guest-console-log` container tails, so boot output is kept even when nobody is attached
(`append='on'` keeps the output of earlier boots of this domain). The `<console>` makes the
same port the domain's console, so `virsh console` and `dom.openConsole` reach it too.
KubeVirt's `autoattachSerialConsole: false` leaves both out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter.context import ConverterContext


def serial_console_enabled(spec: VirtualMachineInstanceSpec) -> bool:
    return spec.domain.devices.autoattach_serial_console is not False


def console(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> list[ET.Element]:
    if not serial_console_enabled(spec):
        return []
    serial = ET.Element("serial", type="unix")
    ET.SubElement(serial, "source", mode="bind", path=str(ctx.console_socket))
    ET.SubElement(serial, "log", file=str(ctx.console_log), append="on")
    ET.SubElement(serial, "target", type="isa-serial", port="0")
    console_element = ET.Element("console", type="unix")
    ET.SubElement(console_element, "source", mode="bind", path=str(ctx.console_socket))
    ET.SubElement(console_element, "target", type="serial", port="0")
    return [serial, console_element]
