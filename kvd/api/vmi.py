"""kubevirt.io/v1 VirtualMachineInstance: the spec kvd implements, and its status.

Field names, nesting and meanings are KubeVirt's, so KubeVirt manifests parse unchanged. Only
what kvd implements is declared; anything else in a manifest is refused by name (see `codec`).
Docs here become the CRD's descriptions, which `kubectl explain` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvd.api.codec import JSONObject
from kvd.api.fields import field, many, mapping, one_of, optional
from kvd.api.meta import DATE_TIME, DNS1123_LABEL, Condition, ObjectMeta, Toleration
from kvd.api.phases import Phase
from kvd.api.quantity import Quantity

MAC_ADDRESS = r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"
# KubeVirt's rule for interface names (validateInterfaceNameFormat); networks share the names.
NETWORK_NAME = r"^[A-Za-z0-9_-]+$"
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Bus = Literal["virtio", "sata", "scsi"]
# KubeVirt's DiskErrorPolicy; libvirt's `<driver error_policy>` takes the same words.
ErrorPolicy = Literal["stop", "ignore", "report", "enospace"]
EvictionStrategy = Literal["None", "LiveMigrate", "LiveMigrateIfPossible", "External"]
InterfaceModel = Literal["virtio", "e1000", "e1000e", "rtl8139", "pcnet", "ne2k_pci"]


# --- domain: CPU, memory, machine, firmware, features -----------------------------------------


@dataclass(frozen=True, kw_only=True)
class CPU:
    cores: int | None = optional("Cores per socket (default 1).", minimum=1)
    sockets: int | None = optional("Sockets (default 1).", minimum=1)
    threads: int | None = optional("Threads per core (default 1).", minimum=1)
    model: str | None = optional(
        "CPU model: host-model, host-passthrough or a named libvirt model; emulated "
        "guests get a model QEMU can emulate.",
        pattern=r"^\S+$",
    )


@dataclass(frozen=True, kw_only=True)
class Memory:
    guest: Quantity | None = optional(
        "Memory the guest sees; defaults to resources.requests.memory."
    )


@dataclass(frozen=True, kw_only=True)
class ResourceRequirements:
    requests: dict[str, Quantity] = mapping("Requested resources (cpu, memory) for the pod.")
    limits: dict[str, Quantity] = mapping("Resource limits (cpu, memory) for the pod.")


@dataclass(frozen=True, kw_only=True)
class Machine:
    type: str | None = optional("QEMU machine type, e.g. q35 (default) or pc.", pattern=r"^\S+$")


@dataclass(frozen=True, kw_only=True)
class BIOS:
    use_serial: bool | None = optional("Show SeaBIOS output on the serial console.")


@dataclass(frozen=True, kw_only=True)
class EFI:
    secure_boot: bool | None = optional("Enable Secure Boot (needs OVMF with SMM).")


@dataclass(frozen=True, kw_only=True)
class Bootloader:
    ONE_OF = one_of("bios", "efi")

    bios: BIOS | None = optional("Boot with BIOS (SeaBIOS), the default.")
    efi: EFI | None = optional("Boot with UEFI (OVMF).")


@dataclass(frozen=True, kw_only=True)
class KernelBootContainer:
    image: str = field("Image holding the kernel and initrd.", pattern=r"^\S+$")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = optional(
        "When to pull the image."
    )
    kernel_path: str | None = optional("Path of the kernel inside the image.", pattern=r"^/")
    initrd_path: str | None = optional("Path of the initrd inside the image.", pattern=r"^/")


@dataclass(frozen=True, kw_only=True)
class KernelBoot:
    kernel_args: str | None = optional("Kernel command line; needs kernelPath.")
    container: KernelBootContainer | None = optional("Where the kernel and initrd come from.")


@dataclass(frozen=True, kw_only=True)
class Firmware:
    uuid: str | None = optional("SMBIOS system UUID.", pattern=UUID)
    serial: str | None = optional("SMBIOS system serial number.")
    bootloader: Bootloader | None = optional("BIOS or EFI.")
    kernel_boot: KernelBoot | None = optional("Boot a kernel and initrd directly.")


@dataclass(frozen=True, kw_only=True)
class FeatureState:
    enabled: bool | None = optional("Whether the feature is on; an empty object means on.")


@dataclass(frozen=True, kw_only=True)
class FeatureAPIC:
    enabled: bool | None = optional("Whether the APIC is on; an empty object means on.")
    end_of_interrupt: bool | None = optional("Enable EOI notification in the guest (eoi).")


@dataclass(frozen=True, kw_only=True)
class Features:
    acpi: FeatureState | None = optional(
        "ACPI: needed for graceful (power button) shutdown. On by default."
    )
    apic: FeatureAPIC | None = optional("The APIC. On by default.")
    smm: FeatureState | None = optional(
        "System Management Mode. Off unless set, or needed by Secure Boot."
    )


@dataclass(frozen=True, kw_only=True)
class Chassis:
    """SMBIOS chassis (type 3) strings the guest reads, e.g. with dmidecode."""

    manufacturer: str | None = optional("Chassis manufacturer.")
    version: str | None = optional("Chassis version.")
    serial: str | None = optional("Chassis serial number.")
    asset: str | None = optional("Chassis asset tag.")
    sku: str | None = optional("Chassis SKU number.")


# --- clock ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClockOffsetUTC:
    offset_seconds: int | None = optional(
        "Offset from UTC in seconds; the guest's own clock changes then survive reboots."
    )


@dataclass(frozen=True, kw_only=True)
class RTCTimer:
    tick_policy: Literal["delay", "catchup"] | None = optional("What to do with missed ticks.")
    enabled: bool | None = optional(
        "Whether the timer is present (default true).", wire_name="present"
    )
    track: Literal["guest", "wall"] | None = optional("Track the guest's or the host's time.")


@dataclass(frozen=True, kw_only=True)
class HPETTimer:
    tick_policy: Literal["delay", "catchup", "merge", "discard"] | None = optional(
        "What to do with missed ticks."
    )
    enabled: bool | None = optional(
        "Whether the timer is present (default true).", wire_name="present"
    )


@dataclass(frozen=True, kw_only=True)
class PITTimer:
    tick_policy: Literal["delay", "catchup", "discard"] | None = optional(
        "What to do with missed ticks."
    )
    enabled: bool | None = optional(
        "Whether the timer is present (default true).", wire_name="present"
    )


@dataclass(frozen=True, kw_only=True)
class KVMTimer:
    enabled: bool | None = optional(
        "Whether kvmclock is present (default true).", wire_name="present"
    )


@dataclass(frozen=True, kw_only=True)
class Timer:
    hpet: HPETTimer | None = optional("High Precision Event Timer.")
    kvm: KVMTimer | None = optional("KVM paravirtual clock (kvmclock).")
    pit: PITTimer | None = optional("Programmable Interval Timer.")
    rtc: RTCTimer | None = optional("Real Time Clock.")


@dataclass(frozen=True, kw_only=True)
class Clock:
    """The guest clock. Unset: UTC with timers suited to Linux guests (see the launcher)."""

    ONE_OF = one_of("utc", "timezone", required=False)

    utc: ClockOffsetUTC | None = optional("Start the guest clock at UTC (plus an offset).")
    timezone: str | None = optional(
        "Start the guest clock in this timezone, e.g. Europe/Paris.",
        pattern=r"^\S+$",
        keep_empty=True,  # a pointer in KubeVirt: "" is a (bad) timezone, not unset
    )
    timer: Timer | None = optional("The timers the guest gets, and their tick policies.")


# --- devices ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DiskTarget:
    bus: Bus | None = optional("Bus the disk is attached to (default virtio).")
    read_only: bool | None = optional("Attach read-only.", wire_name="readonly")


@dataclass(frozen=True, kw_only=True)
class CDRomTarget:
    bus: Bus | None = optional("Bus the cdrom is attached to (default sata).")
    read_only: bool | None = optional("Always true for a cdrom.", wire_name="readonly")
    tray: Literal["open", "closed"] | None = optional("Tray state (default closed).")


@dataclass(frozen=True, kw_only=True)
class LunTarget:
    bus: Bus | None = optional("Bus the LUN is attached to (default scsi).")
    read_only: bool | None = optional("Attach read-only.", wire_name="readonly")


@dataclass(frozen=True, kw_only=True)
class Disk:
    ONE_OF = one_of("disk", "cdrom", "lun", required=False)

    name: str = field("Name of the volume this disk presents.", pattern=DNS1123_LABEL)
    disk: DiskTarget | None = optional("Attach as a disk (the default).")
    cdrom: CDRomTarget | None = optional("Attach as a cdrom.")
    lun: LunTarget | None = optional("Attach as a LUN (a persistentVolumeClaim volume).")
    boot_order: int | None = optional("Boot priority; 1 is first. Unique per VMI.", minimum=1)
    serial: str | None = optional(
        "Serial number the guest sees.", pattern=r"^[A-Za-z0-9_.+-]+$", max_length=20
    )
    error_policy: ErrorPolicy | None = optional(
        "What the guest sees when a write to the volume fails (a full volume, say): stop "
        "(the default) pauses the VMI until it is resumed, report passes the error to the "
        "guest, ignore drops it, enospace pauses on a full volume and reports other errors."
    )
    volume_name: str | None = optional(
        "Deprecated (KubeVirt v1alpha2): the volume this disk presents. Disks now present the "
        "volume of their own name; defaulting renames the disk to it.",
        pattern=DNS1123_LABEL,
    )


@dataclass(frozen=True, kw_only=True)
class Port:
    name: str | None = optional("Port name.", pattern=DNS1123_LABEL, max_length=15)
    protocol: Literal["TCP", "UDP"] | None = optional("TCP (default) or UDP.")
    port: int = field("Port number to forward to the guest.", minimum=1, maximum=65535)


@dataclass(frozen=True, kw_only=True)
class InterfaceBridge:
    """Bridge binding: the guest takes over the pod's IP (KubeVirt's default)."""


@dataclass(frozen=True, kw_only=True)
class InterfaceMasquerade:
    """Masquerade binding: the guest sits behind NAT on the pod's IP."""


@dataclass(frozen=True, kw_only=True)
class Interface:
    ONE_OF = one_of("bridge", "masquerade")

    name: str = field("Name of the network this interface connects.", pattern=NETWORK_NAME)
    bridge: InterfaceBridge | None = optional("Bridge binding.")
    masquerade: InterfaceMasquerade | None = optional("Masquerade binding.")
    ports: tuple[Port, ...] = many("Ports forwarded to the guest (masquerade only); all if empty.")
    model: InterfaceModel | None = optional("NIC model (default virtio).")
    mac_address: str | None = optional("MAC address; generated when unset.", pattern=MAC_ADDRESS)


@dataclass(frozen=True, kw_only=True)
class Rng:
    """A virtio RNG device fed from the host's /dev/urandom."""


@dataclass(frozen=True, kw_only=True)
class Devices:
    disks: tuple[Disk, ...] = many("Disks, each presenting one volume.")
    interfaces: tuple[Interface, ...] = many("NICs, each connected to one network.")
    rng: Rng | None = optional("Attach a virtio RNG.")
    autoattach_serial_console: bool | None = optional("Attach a serial console (default true).")
    autoattach_graphics_device: bool | None = optional(
        "Attach a video device and a VNC display (default true)."
    )
    autoattach_pod_interface: bool | None = optional(
        "Add the default pod interface when none is given (default true)."
    )


@dataclass(frozen=True, kw_only=True)
class DomainSpec:
    cpu: CPU | None = optional("CPU topology and model.")
    memory: Memory | None = optional("Guest memory.")
    resources: ResourceRequirements | None = optional("Pod resources.")
    machine: Machine | None = optional("Machine type.")
    firmware: Firmware | None = optional("Firmware and boot.")
    clock: Clock | None = optional("Guest clock offset and timers.")
    features: Features | None = optional("Hypervisor features.")
    chassis: Chassis | None = optional("SMBIOS chassis information.")
    devices: Devices = field("Devices.", default=Devices())


# --- networks and volumes ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PodNetwork:
    vm_network_cidr: str | None = optional(
        "CIDR of the guest network for masquerade (default 10.0.2.0/24).",
        wire_name="vmNetworkCIDR",
    )


@dataclass(frozen=True, kw_only=True)
class Network:
    ONE_OF = one_of("pod")

    name: str = field("Network name, referenced by an interface.", pattern=NETWORK_NAME)
    pod: PodNetwork | None = optional("The pod's own network.")


@dataclass(frozen=True, kw_only=True)
class ContainerDiskSource:
    image: str = field("Image holding the disk.", pattern=r"^\S+$")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = optional(
        "When to pull the image."
    )
    path: str | None = optional("Path of the disk file inside the image.", pattern=r"^/")


@dataclass(frozen=True, kw_only=True)
class RegistryDiskSource:
    image: str = field("Image holding the disk.", pattern=r"^\S+$")


@dataclass(frozen=True, kw_only=True)
class CloudInitNoCloudSource:
    user_data: str | None = optional("Cloud-init user data.")
    user_data_base64: str | None = optional("Cloud-init user data, base64-encoded.")
    network_data: str | None = optional("Cloud-init network config (v1 or v2).")
    network_data_base64: str | None = optional("Network config, base64-encoded.")


@dataclass(frozen=True, kw_only=True)
class CloudInitConfigDriveSource:
    user_data: str | None = optional("Cloud-init user data.")
    user_data_base64: str | None = optional("Cloud-init user data, base64-encoded.")
    network_data: str | None = optional("OpenStack network_data.json.")
    network_data_base64: str | None = optional("network_data.json, base64-encoded.")


@dataclass(frozen=True, kw_only=True)
class EmptyDiskSource:
    capacity: Quantity = field("Size of the sparse disk.")


@dataclass(frozen=True, kw_only=True)
class PersistentVolumeClaimSource:
    claim_name: str = field("Name of the PVC in the VMI's namespace.")
    read_only: bool | None = optional("Attach read-only.", wire_name="readOnly")


@dataclass(frozen=True, kw_only=True)
class DataVolumeSource:
    name: str = field("Name of the DataVolume in the VMI's namespace.")


@dataclass(frozen=True, kw_only=True)
class HostDiskSource:
    path: str = field("Disk image path on the node.", pattern=r"^/")
    type: Literal["Disk", "DiskOrCreate"] = field("Disk: must exist; DiskOrCreate: created.")
    capacity: Quantity | None = optional("Size when created (DiskOrCreate).")
    shared: bool | None = optional("Whether the disk is shared between VMs.")


@dataclass(frozen=True, kw_only=True)
class Volume:
    ONE_OF = one_of(
        "container_disk",
        "cloud_init_no_cloud",
        "cloud_init_config_drive",
        "empty_disk",
        "persistent_volume_claim",
        "data_volume",
        "host_disk",
        "registry_disk",
    )

    name: str = field("Volume name, referenced by a disk.", pattern=DNS1123_LABEL)
    container_disk: ContainerDiskSource | None = optional("Disk from a container image.")
    cloud_init_no_cloud: CloudInitNoCloudSource | None = optional("NoCloud cloud-init ISO.")
    cloud_init_config_drive: CloudInitConfigDriveSource | None = optional(
        "ConfigDrive cloud-init ISO."
    )
    empty_disk: EmptyDiskSource | None = optional("Temporary sparse disk, gone with the VMI.")
    persistent_volume_claim: PersistentVolumeClaimSource | None = optional("A PVC.")
    data_volume: DataVolumeSource | None = optional("A CDI DataVolume.")
    host_disk: HostDiskSource | None = optional("A disk image file on the node.")
    registry_disk: RegistryDiskSource | None = optional(
        "Deprecated: the old name of containerDisk; defaulting converts it to one."
    )

    def claim(self) -> PersistentVolumeClaimSource | None:
        """The PVC this volume is: its persistentVolumeClaim, or a dataVolume's claim, which has
        the DataVolume's name (as KubeVirt resolves it); None for every other source."""
        if self.data_volume is not None:
            return PersistentVolumeClaimSource(claim_name=self.data_volume.name)
        return self.persistent_volume_claim


# --- the VMI ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstanceSpec:
    domain: DomainSpec = field("The virtual hardware.")
    networks: tuple[Network, ...] = many("Networks the interfaces connect to.")
    volumes: tuple[Volume, ...] = many("Volumes the disks present.")
    termination_grace_period_seconds: int | None = optional(
        "Seconds between the ACPI shutdown request and a forced stop (default 30).", minimum=0
    )
    node_selector: dict[str, str] = mapping("Labels the node must have.")
    tolerations: tuple[Toleration, ...] = many("Taints the launcher pod tolerates.")
    affinity: JSONObject | None = optional("core/v1 Affinity for the launcher pod.")
    hostname: str | None = optional(
        "Guest hostname (default: the VMI name).", pattern=DNS1123_LABEL, max_length=63
    )
    subdomain: str | None = optional(
        "DNS subdomain for the guest.", pattern=DNS1123_LABEL, max_length=63
    )
    eviction_strategy: EvictionStrategy | None = optional(
        "What a node drain does to the VMI.",
        keep_empty=True,  # a pointer in KubeVirt
    )


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstanceNetworkInterface:
    name: str | None = optional("Interface name from the spec.")
    mac: str | None = optional("MAC address.")
    ip_address: str | None = optional("Primary IP address.")
    ip_addresses: tuple[str, ...] = many("All IP addresses.")
    interface_name: str | None = optional("Interface name inside the guest.")


@dataclass(frozen=True, kw_only=True)
class PhaseTransitionTimestamp:
    phase: Phase = field("The phase entered.")
    phase_transition_timestamp: str = field("When it was entered.", format=DATE_TIME)


@dataclass(frozen=True, kw_only=True)
class GuestOSInfo:
    name: str | None = optional("OS name.")
    id: str | None = optional("OS id.")
    kernel_release: str | None = optional("Kernel release.")
    kernel_version: str | None = optional("Kernel version.")
    pretty_name: str | None = optional("Human-readable OS name.")
    version: str | None = optional("OS version.")
    version_id: str | None = optional("OS version id.")
    machine: str | None = optional("Machine architecture.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstanceStatus:
    phase: Phase | None = optional("Where the VMI is in its life.")
    reason: str | None = optional("CamelCase reason for the phase, e.g. NodeUnresponsive.")
    conditions: tuple[Condition, ...] = many("Ready, Paused, SoftwareEmulation, Synchronized …")
    interfaces: tuple[VirtualMachineInstanceNetworkInterface, ...] = many("Guest NICs.")
    node_name: str | None = optional("Node the VMI runs on.")
    active_pods: dict[str, str] = mapping("Launcher pod UID → node name.")
    phase_transition_timestamps: tuple[PhaseTransitionTimestamp, ...] = many(
        "When each phase was entered."
    )
    guest_os_info: GuestOSInfo | None = optional("What the guest reports about itself.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstance:
    api_version: str = field("kubevirt.io/v1 (or the v1alpha3 alias).")
    kind: Literal["VirtualMachineInstance"] = field("VirtualMachineInstance.")
    metadata: ObjectMeta = field("Standard object metadata.", default=ObjectMeta())
    spec: VirtualMachineInstanceSpec = field("What the VM should be.")
    status: VirtualMachineInstanceStatus | None = optional("What the VM is; written by kvd.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstanceTemplateSpec:
    metadata: JSONObject | None = optional("Labels and annotations for the VMIs made from this.")
    spec: VirtualMachineInstanceSpec = field("Spec of the VMIs made from this.")
