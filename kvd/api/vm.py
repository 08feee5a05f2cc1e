"""kubevirt.io/v1 VirtualMachine and VirtualMachineInstanceReplicaSet.

Their statuses are written by kvd's controllers (kvd/controller/vm.py, replicaset.py) with
KubeVirt's field names, so KubeVirt's tools read them; `stateChangeRequests` is also written by
whoever asks a VM to start or stop (kvdctl, the ControllerService), as virt-api does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvd.api.codec import JSONObject
from kvd.api.fields import field, many, mapping, optional
from kvd.api.meta import DATE_TIME, Condition, LabelSelector, ObjectMeta
from kvd.api.vmi import VirtualMachineInstanceTemplateSpec

RunStrategy = Literal["Always", "RerunOnFailure", "Manual", "Halted", "Once"]
StateChangeAction = Literal["Start", "Stop"]
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
class VirtualMachineStateChangeRequest:
    """A request to start or stop the VM's VMI, acted on (and removed) by the controller."""

    action: StateChangeAction = field("Start or Stop.")
    data: dict[str, str] = mapping("Additional data for the action.")
    uid: str | None = optional("The VMI a Stop request is for.")


@dataclass(frozen=True, kw_only=True)
class VirtualMachineStartFailure:
    """Consecutive VMIs that ended before they ran, for the restart back-off."""

    consecutive_fail_count: int | None = optional("How many VMIs in a row failed to start.")
    last_failed_vmi_uid: str | None = optional(
        "The uid of the last of them.", wire_name="lastFailedVMIUID"
    )
    retry_after_timestamp: str | None = optional(
        "No new VMI is started before this time.", format=DATE_TIME
    )


@dataclass(frozen=True, kw_only=True)
class VirtualMachineStatus:
    created: bool | None = optional("Whether a VMI exists for this VM.")
    ready: bool | None = optional("Whether the VMI is running and ready.")
    printable_status: PrintableStatus | None = optional("Human-readable state.")
    run_strategy: RunStrategy | None = optional("The run strategy in effect.")
    conditions: tuple[Condition, ...] = many("Conditions.")
    state_change_requests: tuple[VirtualMachineStateChangeRequest, ...] = many(
        "Start and stop requests not acted on yet, oldest first."
    )
    start_failure: VirtualMachineStartFailure | None = optional(
        "VMIs that failed before they ran, for the CrashLoopBackOff back-off."
    )
    observed_generation: int | None = optional(
        "The VM generation the running VMI was made from (or matches)."
    )
    desired_generation: int | None = optional("The VM's generation now.")


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
