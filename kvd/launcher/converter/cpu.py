"""`<vcpu>` and `<cpu>`: the vCPU count, its topology, and the CPU model the guest sees.

Models follow KubeVirt: `host-model` (the default) and `host-passthrough` are libvirt CPU
modes; any other name is a libvirt CPU model, used exactly (`fallback='forbid'`), so a guest
never silently gets a different CPU than the one asked for.

Emulated guests (`domain_type == "qemu"`, TCG) cannot use the host's CPU: libvirt 9.0 refuses
`host-passthrough` without a hardware accelerator (domain capabilities report it
`supported='no'` under TCG), and its TCG `host-model` is a named model plus a feature list
computed from the host CPU signature, which varies between machines. Both become
`mode='maximum'` (libvirt ≥ 7.9, QEMU `-cpu max`): every feature TCG implements, stable for a
given QEMU, and modern enough for distributions that require x86-64-v2 or later — which the
classic TCG default `qemu64` is not. A named model is kept under TCG; if TCG cannot provide
it, libvirt says so when the domain starts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from kvd.api.vmi import CPU, VirtualMachineInstanceSpec
from kvd.launcher.converter.context import ConverterContext

HOST_MODEL: Final = "host-model"
HOST_PASSTHROUGH: Final = "host-passthrough"
DEFAULT_MODEL: Final = HOST_MODEL  # KubeVirt's default CPU model
EMULATED_MODE: Final = "maximum"


def _cpu(spec: VirtualMachineInstanceSpec) -> CPU:
    return spec.domain.cpu or CPU()


def topology(spec: VirtualMachineInstanceSpec) -> tuple[int, int, int]:
    """(sockets, cores, threads); each defaults to 1 as KubeVirt's defaulting does."""
    cpu = _cpu(spec)
    return cpu.sockets or 1, cpu.cores or 1, cpu.threads or 1


def vcpu_count(spec: VirtualMachineInstanceSpec) -> int:
    sockets, cores, threads = topology(spec)
    return sockets * cores * threads


def vcpu(spec: VirtualMachineInstanceSpec) -> ET.Element:
    # libvirt requires the topology's product to equal the vCPU count: derive one from the other.
    element = ET.Element("vcpu", placement="static")
    element.text = str(vcpu_count(spec))
    return element


def cpu(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> ET.Element:
    model = _cpu(spec).model or DEFAULT_MODEL
    if model in (HOST_MODEL, HOST_PASSTHROUGH):
        mode = EMULATED_MODE if ctx.domain_type == "qemu" else model
        element = ET.Element("cpu", mode=mode)
    else:
        element = ET.Element("cpu", mode="custom", match="exact")
        ET.SubElement(element, "model", fallback="forbid").text = model
    sockets, cores, threads = topology(spec)
    ET.SubElement(element, "topology", sockets=str(sockets), cores=str(cores), threads=str(threads))
    return element
