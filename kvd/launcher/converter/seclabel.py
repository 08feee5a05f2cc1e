"""`<seclabel>`: the uid and gid QEMU runs as (libvirt's DAC model); nothing is relabeled.

`relabel='no'`: the launcher, not libvirt, has given QEMU's user the files it opens
(kvd/launcher/qemu_user.py says why), so libvirt must not chown any disk, backing file or
device node of the domain, nor chown them back when it stops. The label is numeric (`+uid:+gid`)
so that it means the same ids whichever passwd file reads it; the ids arrive in the context.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.launcher.converter.context import ConverterContext
from kvd.launcher.converter.errors import ContextError


def seclabel(ctx: ConverterContext) -> ET.Element:
    ids = ctx.qemu_ids
    if ids.uid < 0 or ids.gid < 0:
        raise ContextError(f"QEMU's uid and gid must not be negative, not {ids.uid}:{ids.gid}")
    element = ET.Element("seclabel", type="static", model="dac", relabel="no")
    ET.SubElement(element, "label").text = f"+{ids.uid}:+{ids.gid}"
    return element
