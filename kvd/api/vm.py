"""kubevirt.io/v1 VirtualMachine and VirtualMachineInstanceReplicaSet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvd.api.codec import JSONObject
from kvd.api.fields import field, many, optional
from kvd.api.meta import Condition, LabelSelector, ObjectMeta
from kvd.api.vmi import VirtualMachineInstanceTemplateSpec

RunStrategy = Literal["Always", "RerunOnFailure", "Manual", "Halted", "Once"]
PrintableStatus = Literal[
    "Stopped",
    "Provisioning",
    "Starting",
    "Running",
    "Paused",
    "Stopping",
    "Terminating",
    "CrashLoopBackOff",
    "Migrating",
    "Unknown",
    "ErrorUnschedulable",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrorPvcNotFound",
    "DataVolumeError",
    "WaitingForVolumeBinding",
    "WaitingForReceiver",
]


@dataclass(frozen=True, kw_only=True)
class DataVolumeTemplateSpec:
    """A CDI DataVolume created with the VM; its spec is CDI's and passed through."""

    metadata: JSONObject | None = optional("Metadata of the DataVolume (name is required).")
    spec: JSONObject = field("cdi.kubevirt.io DataVolumeSpec.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineSpec:
    running: bool | None = optional(
        "Deprecated: true or false; mutually exclusive with runStrategy."
    )
    run_strategy: RunStrategy | None = optional(
        "Always, RerunOnFailure, Manual, Halted or Once; mutually exclusive with running.",
        keep_empty=True,  # a pointer in KubeVirt: "" is not "unset" but an invalid strategy
    )
    template: VirtualMachineInstanceTemplateSpec = field("The VMI this VM runs.")
    data_volume_templates: tuple[DataVolumeTemplateSpec, ...] = many(
        "DataVolumes created with the VM."
    )


@dataclass(frozen=True, kw_only=True)
class VirtualMachineStatus:
    created: bool | None = optional("Whether a VMI exists for this VM.")
    ready: bool | None = optional("Whether the VMI is running and ready.")
    printable_status: PrintableStatus | None = optional("Human-readable state.")
    run_strategy: RunStrategy | None = optional("The run strategy in effect.")
    conditions: tuple[Condition, ...] = many("Conditions.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachine:
    api_version: str = field("kubevirt.io/v1 (or the v1alpha3 alias).")
    kind: Literal["VirtualMachine"] = field("VirtualMachine.")
    metadata: ObjectMeta = field("Standard object metadata.", default=ObjectMeta())
    spec: VirtualMachineSpec = field("What should run.")
    status: VirtualMachineStatus | None = optional("What runs; written by kvd.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstanceReplicaSetSpec:
    replicas: int | None = optional("How many VMIs to keep (default 1).", minimum=0)
    selector: LabelSelector = field("Selects the VMIs this set owns; must match the template.")
    template: VirtualMachineInstanceTemplateSpec = field("The VMIs to create.")
    paused: bool | None = optional("When true, replicas are neither created nor deleted.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstanceReplicaSetStatus:
    replicas: int | None = optional("VMIs that exist.")
    ready_replicas: int | None = optional("VMIs that are ready.")
    label_selector: str | None = optional("The selector as a string, for the scale subresource.")
    conditions: tuple[Condition, ...] = many("Conditions (ReplicaFailure, ReplicaPaused).")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineInstanceReplicaSet:
    api_version: str = field("kubevirt.io/v1 (or the v1alpha3 alias).")
    kind: Literal["VirtualMachineInstanceReplicaSet"] = field("VirtualMachineInstanceReplicaSet.")
    metadata: ObjectMeta = field("Standard object metadata.", default=ObjectMeta())
    spec: VirtualMachineInstanceReplicaSetSpec = field("Desired replicas.")
    status: VirtualMachineInstanceReplicaSetStatus | None = optional("Observed replicas.")
