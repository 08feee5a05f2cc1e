"""The display: a VGA card and a VNC server on a unix socket, never on a TCP port.

As KubeVirt's converter does on amd64, every domain gets a `vga` video device (one head, 16 MiB
of VRAM) and `<graphics type='vnc'>` listening on a socket in the launcher's run dir, unless
`autoattachGraphicsDevice: false`, which leaves both out (and the launcher's Vnc then has
nothing to connect to). The socket is the only way in: no port is ever opened, so the display
is reached through LauncherService.Vnc alone, like the console.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import VirtualMachineInstanceSpec
from kvd.launcher.converter.context import ConverterContext

VGA_VRAM_KIB = 16384


def graphics_enabled(spec: VirtualMachineInstanceSpec) -> bool:
    return spec.domain.devices.autoattach_graphics_device is not False


def graphics(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> list[ET.Element]:
    """`<graphics>` and `<video>`, in libvirt's device order (graphics before video)."""
    if not graphics_enabled(spec):
        return []
    display = ET.Element("graphics", type="vnc")
    ET.SubElement(display, "listen", type="socket", socket=str(ctx.vnc_socket))
    video = ET.Element("video")
    ET.SubElement(video, "model", type="vga", vram=str(VGA_VRAM_KIB), heads="1", primary="yes")
    return [display, video]
