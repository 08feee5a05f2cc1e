"""Kubernetes object metadata and the small core/v1 types kubevirt.io objects embed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvd.api.codec import JSONObject
from kvd.api.fields import field, many, mapping, optional

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATE_TIME = "date-time"


@dataclass(frozen=True, kw_only=True)
class ObjectMeta:
    """metav1.ObjectMeta. The API server owns most of it; kvd reads, never invents, these."""

    name: str | None = optional("Unique name within the namespace.")
    generate_name: str | None = optional("Prefix for a server-generated name.")
    namespace: str | None = optional("Namespace of the object.")
    self_link: str | None = optional("Deprecated; kept so server objects parse.")
    uid: str | None = optional("Server-assigned unique id.")
    resource_version: str | None = optional("Opaque version for optimistic concurrency.")
    generation: int | None = optional("Spec generation, bumped by the server.")
    creation_timestamp: str | None = optional("When the object was created.", format=DATE_TIME)
    deletion_timestamp: str | None = optional("When deletion was requested.", format=DATE_TIME)
    deletion_grace_period_seconds: int | None = optional("Grace period of a pending deletion.")
    labels: dict[str, str] = mapping("Labels.")
    annotations: dict[str, str] = mapping("Annotations.")
    owner_references: tuple[JSONObject, ...] = many("Owners, for garbage collection.")
    finalizers: tuple[str, ...] = many("Finalizers that hold deletion.")
    managed_fields: tuple[JSONObject, ...] = many("Server-side apply bookkeeping.")


@dataclass(frozen=True, kw_only=True)
class Toleration:
    """core/v1 Toleration, copied onto the launcher pod."""

    key: str | None = optional("Taint key the toleration applies to; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = optional("Exists or Equal (default Equal).")
    value: str | None = optional("Taint value to match when the operator is Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = optional(
        "Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = optional(
        "How long a NoExecute taint is tolerated before eviction."
    )


@dataclass(frozen=True, kw_only=True)
class LabelSelectorRequirement:
    key: str = field("Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = field("Set operator.")
    values: tuple[str, ...] = many("Values for In and NotIn; empty for Exists/DoesNotExist.")


@dataclass(frozen=True, kw_only=True)
class LabelSelector:
    """metav1.LabelSelector: all of matchLabels and matchExpressions must hold."""

    match_labels: dict[str, str] = mapping("Labels that must all be present with these values.")
    match_expressions: tuple[LabelSelectorRequirement, ...] = many("Set-based requirements.")


@dataclass(frozen=True, kw_only=True)
class Condition:
    """A status condition as KubeVirt writes them."""

    type: str = field("Condition type, e.g. Ready, Paused, SoftwareEmulation, Synchronized.")
    status: Literal["True", "False", "Unknown"] = field("True, False or Unknown.")
    reason: str | None = optional("CamelCase reason for the last transition.")
    message: str | None = optional("Human-readable detail.")
    last_probe_time: str | None = optional("Last time the condition was probed.", format=DATE_TIME)
    last_transition_time: str | None = optional(
        "Last time the condition changed status.", format=DATE_TIME
    )
