"""KubeVirt's defaults, applied as its mutating webhook applies them, before validation.

Each function returns a new object; nothing is mutated (objects may come from an informer's
cache). Defaulting is idempotent: defaulting a defaulted object changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from kvd.api import vm as vmtypes
from kvd.api import vmi as vmitypes
from kvd.api.quantity import Quantity

DEFAULT_GRACE_PERIOD_SECONDS = 30
DEFAULT_MACHINE_TYPE = "q35"
DEFAULT_NETWORK_NAME = "default"
DEFAULT_INTERFACE_MODEL: Final = "virtio"
# The guest network behind a masquerade interface when the pod network names no vmNetworkCIDR
# (KubeVirt's api.DefaultVMCIDR): the gateway is its first address, the guest its second.
DEFAULT_VM_NETWORK_CIDR: Final = "10.0.2.0/24"
DEFAULT_REPLICAS = 1


def vmi(obj: vmitypes.VirtualMachineInstance) -> vmitypes.VirtualMachineInstance:
    return replace(obj, spec=vmi_spec(obj.spec))


def vm(obj: vmtypes.VirtualMachine) -> vmtypes.VirtualMachine:
    template = replace(obj.spec.template, spec=vmi_spec(obj.spec.template.spec))
    return replace(obj, spec=replace(obj.spec, template=template))


def replica_set(
    obj: vmtypes.VirtualMachineInstanceReplicaSet,
) -> vmtypes.VirtualMachineInstanceReplicaSet:
    spec = obj.spec
    template = replace(spec.template, spec=vmi_spec(spec.template.spec))
    replicas = DEFAULT_REPLICAS if spec.replicas is None else spec.replicas
    return replace(obj, spec=replace(spec, replicas=replicas, template=template))


def vmi_spec(spec: vmitypes.VirtualMachineInstanceSpec) -> vmitypes.VirtualMachineInstanceSpec:
    spec = _renamed(spec)
    networks, interfaces = _pod_network(spec)
    domain = spec.domain
    devices = replace(
        domain.devices,
        disks=_disks(domain.devices.disks, spec.volumes),
        interfaces=tuple(_interface(i) for i in interfaces),
    )
    grace = spec.termination_grace_period_seconds
    memory, resources = _memory(domain)
    return replace(
        spec,
        networks=networks,
        termination_grace_period_seconds=DEFAULT_GRACE_PERIOD_SECONDS if grace is None else grace,
        domain=replace(
            domain,
            cpu=_cpu(domain.cpu),
            machine=_machine(domain.machine),
            features=_features(domain.features),
            devices=devices,
            memory=memory,
            resources=resources,
        ),
    )


def _renamed(spec: vmitypes.VirtualMachineInstanceSpec) -> vmitypes.VirtualMachineInstanceSpec:
    """KubeVirt's deprecated spellings in today's words (`deprecations.warnings` tells the user):
    a `registryDisk` volume is a `containerDisk`, and a disk's `volumeName` becomes its name."""
    volumes = tuple(
        replace(
            v,
            registry_disk=None,
            container_disk=vmitypes.ContainerDiskSource(image=v.registry_disk.image),
        )
        if v.registry_disk is not None and v.container_disk is None
        else v
        for v in spec.volumes
    )
    disks = tuple(
        replace(d, name=d.volume_name, volume_name=None) if d.volume_name is not None else d
        for d in spec.domain.devices.disks
    )
    devices = replace(spec.domain.devices, disks=disks)
    return replace(spec, volumes=volumes, domain=replace(spec.domain, devices=devices))


def _machine(machine: vmitypes.Machine | None) -> vmitypes.Machine:
    """No machine, or one without a type (`type: ""`): the default machine, as KubeVirt."""
    machine = machine or vmitypes.Machine()
    return machine if machine.type else replace(machine, type=DEFAULT_MACHINE_TYPE)


def _disks(
    disks: tuple[vmitypes.Disk, ...], volumes: tuple[vmitypes.Volume, ...]
) -> tuple[vmitypes.Disk, ...]:
    """Every volume without a disk gets a virtio disk; every disk gets its bus."""
    named = {d.name for d in disks}
    implied = tuple(vmitypes.Disk(name=v.name) for v in volumes if v.name not in named)
    return tuple(_disk(d) for d in disks + implied)


def _disk(disk: vmitypes.Disk) -> vmitypes.Disk:
    if disk.cdrom is not None:
        cdrom = disk.cdrom
        return replace(
            disk,
            cdrom=replace(
                cdrom,
                bus=cdrom.bus or "sata",
                read_only=True if cdrom.read_only is None else cdrom.read_only,
                tray=cdrom.tray or "closed",
            ),
        )
    if disk.lun is not None:
        return replace(disk, lun=replace(disk.lun, bus=disk.lun.bus or "scsi"))
    target = disk.disk or vmitypes.DiskTarget()
    return replace(disk, disk=replace(target, bus=target.bus or "virtio"))


def _pod_network(
    spec: vmitypes.VirtualMachineInstanceSpec,
) -> tuple[tuple[vmitypes.Network, ...], tuple[vmitypes.Interface, ...]]:
    """No interfaces and no networks: one pod network with the default (bridge) binding."""
    interfaces, networks = spec.domain.devices.interfaces, spec.networks
    if interfaces or networks or spec.domain.devices.autoattach_pod_interface is False:
        return networks, interfaces
    return (
        (vmitypes.Network(name=DEFAULT_NETWORK_NAME, pod=vmitypes.PodNetwork()),),
        (vmitypes.Interface(name=DEFAULT_NETWORK_NAME, bridge=vmitypes.InterfaceBridge()),),
    )


def _interface(interface: vmitypes.Interface) -> vmitypes.Interface:
    return replace(interface, model=interface.model or DEFAULT_INTERFACE_MODEL)


def _cpu(cpu: vmitypes.CPU | None) -> vmitypes.CPU:
    cpu = cpu or vmitypes.CPU()
    return replace(cpu, cores=cpu.cores or 1, sockets=cpu.sockets or 1, threads=cpu.threads or 1)


def _features(features: vmitypes.Features | None) -> vmitypes.Features:
    features = features or vmitypes.Features()
    if features.acpi is None:
        return replace(features, acpi=vmitypes.FeatureState())
    return features


def _memory(
    domain: vmitypes.DomainSpec,
) -> tuple[vmitypes.Memory | None, vmitypes.ResourceRequirements | None]:
    """Guest memory from the memory request, or the request from guest memory, as KubeVirt."""
    resources = domain.resources or vmitypes.ResourceRequirements()
    request: Quantity | None = resources.requests.get("memory")
    guest = domain.memory.guest if domain.memory else None
    if guest is None and request is not None:
        return replace(domain.memory or vmitypes.Memory(), guest=request), domain.resources
    if request is None and guest is not None:
        requests = {**resources.requests, "memory": guest}
        return domain.memory, replace(resources, requests=requests)
    return domain.memory, domain.resources
