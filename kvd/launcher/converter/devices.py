"""`<devices>`: the emulator, then each device area's elements, in libvirt's own order.

What is *not* here is a decision too. No sound, USB or input devices beyond the PS/2 ones the
machine has: a kvd guest is reached through its serial console and its VNC display (graphics.py,
as KubeVirt gives every VMI by default), and every emulated device costs boot time, memory and
attack surface. libvirt adds a USB controller unless told `model='none'`, so
that is said explicitly. No memory balloon (`model='none'`): kvd never resizes a running guest,
and the pod's memory request already accounts for all of guest RAM.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter import console, disks, graphics, interfaces, rng
from kvd.launcher.converter.context import ConverterContext


def devices(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> ET.Element:
    element = ET.Element("devices")
    if ctx.emulator is not None:
        ET.SubElement(element, "emulator").text = str(ctx.emulator)
    disk_devices = disks.disks(spec, ctx)
    element.extend(disk_devices.disks)
    element.extend(disk_devices.controllers)
    ET.SubElement(element, "controller", type="usb", model="none")
    element.extend(interfaces.interfaces(spec, ctx))
    element.extend(console.console(spec, ctx))
    element.extend(graphics.graphics(spec, ctx))
    ET.SubElement(element, "memballoon", model="none")
    element.extend(rng.rng(spec))
    return element
