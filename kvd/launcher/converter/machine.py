"""The `<os><type>`: an HVM guest of the spec's machine type.

kvd runs x86_64 guests only (q35 and pc are x86 machine types), so the architecture is fixed
here rather than guessed from the host: the XML then does not depend on where it is rendered.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from kvd.api import defaults
from kvd.api.vmi import VirtualMachineInstanceSpec

ARCH: Final = "x86_64"


def machine_type(spec: VirtualMachineInstanceSpec) -> str:
    machine = spec.domain.machine
    return machine.type if machine and machine.type else defaults.DEFAULT_MACHINE_TYPE


def is_q35(machine: str) -> bool:
    """`q35` and its versioned forms (`pc-q35-7.2`); SMM and Secure Boot need it."""
    return machine == "q35" or machine.startswith("pc-q35-")


def os_type(spec: VirtualMachineInstanceSpec) -> ET.Element:
    element = ET.Element("type", arch=ARCH, machine=machine_type(spec))
    element.text = "hvm"
    return element
