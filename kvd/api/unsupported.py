"""KubeVirt features kvd does not have yet, by the field, kind or annotation that asks for them.

kvd refuses what it does not implement instead of ignoring it (DESIGN.md §1). A bare "field not
supported by kvd" is right for a misspelt field, but a user who copied a KubeVirt manifest
wants to know which feature is missing: `spec.domain.devices.gpus: field not supported by kvd
yet (GPU passthrough)`. The tables name KubeVirt's fields as KubeVirt spells them, keyed by the
kvd class that would hold them; a test checks every key names a real class that does not
declare the field, so an entry cannot outlive the feature's arrival.
"""

from __future__ import annotations

from typing import Final

# (kvd class name, wire name) → the feature, in words a KubeVirt user would search for.
FIELDS: Final[dict[tuple[str, str], str]] = {
    ("VirtualMachineInstanceSpec", "priorityClassName"): "priority classes",
    ("VirtualMachineInstanceSpec", "resourceClaims"): "dynamic resource allocation (DRA)",
    ("VirtualMachineInstanceSpec", "schedulerName"): "custom schedulers",
    ("VirtualMachineInstanceSpec", "readinessProbe"): "readiness probes",
    ("VirtualMachineInstanceSpec", "livenessProbe"): "liveness probes",
    ("VirtualMachineInstanceSpec", "accessCredentials"): "access credentials",
    ("VirtualMachineInstanceSpec", "dnsConfig"): "guest DNS settings",
    ("VirtualMachineInstanceSpec", "dnsPolicy"): "guest DNS settings",
    ("VirtualMachineInstanceSpec", "startStrategy"): "start strategies",
    ("VirtualMachineInstanceSpec", "topologySpreadConstraints"): "topology spread constraints",
    ("VirtualMachineInstanceSpec", "architecture"): "choosing the guest architecture",
    ("VirtualMachineSpec", "instancetype"): "instance types",
    ("VirtualMachineSpec", "preference"): "preferences",
    ("VirtualMachineSpec", "flavor"): "flavors (the old name of instance types)",
    ("VirtualMachineSpec", "resourceClaimTemplates"): "dynamic resource allocation (DRA)",
    ("VirtualMachineSpec", "updateVolumesStrategy"): "volume migration",
    ("DomainSpec", "ioThreadsPolicy"): "IO threads",
    ("DomainSpec", "ioThreads"): "IO threads",
    ("DomainSpec", "launchSecurity"): "confidential computing (SEV, SNP, TDX)",
    ("DomainSpec", "rebootPolicy"): "reboot policies",
    ("CPU", "dedicatedCpuPlacement"): "dedicated CPU placement",
    ("CPU", "isolateEmulatorThread"): "emulator thread isolation",
    ("CPU", "features"): "CPU feature flags",
    ("CPU", "numa"): "guest NUMA topology",
    ("CPU", "realtime"): "realtime tuning",
    ("CPU", "maxSockets"): "CPU hotplug",
    ("Memory", "hugepages"): "hugepages",
    ("Memory", "maxGuest"): "memory hotplug",
    ("Memory", "fileBacked"): "file-backed guest memory",
    ("Firmware", "acpi"): "ACPI tables (SLIC, MSDM)",
    ("EFI", "persistent"): "persistent EFI variables",
    ("Features", "hyperv"): "Hyper-V enlightenments",
    ("Features", "hypervPassthrough"): "Hyper-V enlightenments",
    ("Features", "kvm"): "hiding KVM from the guest",
    ("Features", "pvspinlock"): "paravirtual spinlocks",
    ("Timer", "hyperv"): "Hyper-V enlightenments",
    ("Devices", "gpus"): "GPU passthrough",
    ("Devices", "hostDevices"): "host device passthrough",
    ("Devices", "watchdog"): "watchdog devices",
    ("Devices", "inputs"): "input devices",
    ("Devices", "autoattachMemBalloon"): "the memory balloon",
    ("Devices", "autoattachVSOCK"): "VSOCK",
    ("Devices", "vsock"): "VSOCK",
    ("Devices", "qats"): "Intel QAT devices",
    ("Devices", "blockMultiQueue"): "block multi-queue",
    ("Devices", "networkInterfaceMultiqueue"): "network multi-queue",
    ("Devices", "filesystems"): "virtiofs filesystems",
    ("Devices", "sound"): "sound devices",
    ("Devices", "tpm"): "TPM devices",
    ("Devices", "clientPassthrough"): "USB redirection",
    ("Devices", "downwardMetrics"): "downward metrics",
    ("Devices", "panicDevices"): "panic devices",
    ("Devices", "useVirtioTransitional"): "virtio-transitional devices",
    ("Devices", "video"): "choosing the video device",
    ("Disk", "dedicatedIOThread"): "IO threads",
    ("Disk", "cache"): "disk cache modes",
    ("Disk", "io"): "disk IO modes",
    ("Disk", "blockSize"): "custom disk block sizes",
    ("Disk", "shareable"): "shareable disks",
    ("Disk", "tag"): "device tags",
    ("DiskTarget", "pciAddress"): "PCI address placement",
    ("DiskTarget", "rotationRate"): "SSD emulation (rotationRate)",
    ("Interface", "slirp"): "the slirp binding (removed from KubeVirt in v1.3)",
    ("Interface", "macvtap"): "the macvtap binding (removed from KubeVirt in v1.3)",
    ("Interface", "passt"): "the passt binding",
    ("Interface", "passtBinding"): "the passt binding",
    ("Interface", "sriov"): "SR-IOV",
    ("Interface", "binding"): "network binding plugins",
    ("Interface", "bootOrder"): "network boot",
    ("Interface", "pciAddress"): "PCI address placement",
    ("Interface", "dhcpOptions"): "DHCP options",
    ("Interface", "tag"): "device tags",
    ("Interface", "acpiIndex"): "ACPI interface indexes",
    ("Interface", "state"): "interface link states",
    ("Network", "multus"): "Multus secondary networks",
    ("Network", "genie"): "CNI-Genie networks (removed from KubeVirt)",
    ("Volume", "sysprep"): "sysprep volumes",
    ("Volume", "ephemeral"): "ephemeral PVC volumes",
    ("Volume", "configMap"): "configMap volumes",
    ("Volume", "secret"): "secret volumes",
    ("Volume", "downwardAPI"): "downwardAPI volumes",
    ("Volume", "serviceAccount"): "serviceAccount volumes",
    ("Volume", "downwardMetrics"): "downward metrics",
    ("Volume", "memoryDump"): "memory dumps",
    ("ContainerDiskSource", "imagePullSecret"): "image pull secrets",
    ("KernelBootContainer", "imagePullSecret"): "image pull secrets",
    ("RegistryDiskSource", "imagePullSecret"): "image pull secrets",
    ("CloudInitNoCloudSource", "secretRef"): "cloud-init data from secrets",
    ("CloudInitNoCloudSource", "networkDataSecretRef"): "cloud-init data from secrets",
    ("CloudInitConfigDriveSource", "secretRef"): "cloud-init data from secrets",
    ("CloudInitConfigDriveSource", "networkDataSecretRef"): "cloud-init data from secrets",
}

# Fields kvd's types declare, so that the CRD schema carries them as KubeVirt's does, but that
# admission refuses until the feature behind them arrives (an accepted one would only fail
# later). (kvd class name, wire name) → the feature; a test checks each names a declared field.
# Empty since DataVolumes arrived (kvd/api/datavolume.py).
DECLARED_NOT_SUPPORTED: Final[dict[tuple[str, str], str]] = {}

# KubeVirt kinds (their own API groups included) that kvd does not serve.
KINDS: Final[dict[str, str]] = {
    "VirtualMachineInstanceMigration": "live migration",
    "MigrationPolicy": "migration policies",
    "VirtualMachineInstancePreset": "VMI presets (removed from KubeVirt)",
    "VirtualMachinePool": "VM pools",
    "VirtualMachineInstancetype": "instance types",
    "VirtualMachineClusterInstancetype": "instance types",
    "VirtualMachinePreference": "preferences",
    "VirtualMachineClusterPreference": "preferences",
    "VirtualMachineFlavor": "flavors (the old name of instance types)",
    "VirtualMachineClusterFlavor": "flavors (the old name of instance types)",
    "VirtualMachineSnapshot": "snapshots",
    "VirtualMachineRestore": "snapshots",
    "VirtualMachineExport": "VM export",
    "VirtualMachineClone": "cloning",
    "KubeVirt": "the KubeVirt operator's CR (kvd is configured by its Helm chart)",
}

# Annotations through which KubeVirt changes what a VMI is.
ANNOTATIONS: Final[dict[str, str]] = {
    "hooks.kubevirt.io/hookSidecars": "hook sidecars",
}

FIELD_NOT_SUPPORTED: Final = "field not supported by kvd"


def field_message(class_name: str, key: object) -> str:
    feature = FIELDS.get((class_name, key)) if isinstance(key, str) else None
    if feature is None:
        return FIELD_NOT_SUPPORTED
    return f"{FIELD_NOT_SUPPORTED} yet ({feature})"


def declared_message(class_name: str, wire: str) -> str:
    """The error for a field of DECLARED_NOT_SUPPORTED that a manifest sets."""
    return f"{FIELD_NOT_SUPPORTED} yet ({DECLARED_NOT_SUPPORTED[class_name, wire]})"


def kind_feature(kind: str) -> str | None:
    return KINDS.get(kind)


def annotation_message(key: str) -> str | None:
    feature = ANNOTATIONS.get(key)
    return None if feature is None else f"annotation not supported by kvd yet ({feature})"
