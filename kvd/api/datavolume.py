"""CDI's DataVolume (`cdi.kubevirt.io/v1beta1`): a PVC filled from a source, as CDI names it.

The dataclasses are the one source of the CRD's schema (`crd()`) and of the parser the DV
controller uses (`load`), as for the kubevirt.io kinds. The words of the API — phases, condition
types and reasons, the annotations CDI puts on the PVC it creates — are defined here once, and
the controller (kvd/controller/datavolume.py) and the VM controller import them.

Sources kvd imports: `http` (url, `certConfigMap` holding a CA bundle, `secretRef` to a Secret
with `accessKeyId`/`secretKey` for basic auth), `registry` (a containerDisk image; on the local
cluster, the local image store), `pvc` (clone) and `blank`. `spec.storage` (CDI's preferred form:
defaults filled from the cluster) or `spec.pvc` (a PersistentVolumeClaimSpec taken as written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from kvd.api import codec
from kvd.api.codec import JSONObject
from kvd.api.errors import FieldError, Path, ValidationError
from kvd.api.fields import field, many, mapping, one_of, optional
from kvd.api.meta import DATE_TIME, ObjectMeta
from kvd.api.quantity import Quantity

GROUP: Final = "cdi.kubevirt.io"
VERSION: Final = "v1beta1"
KIND: Final = "DataVolume"
PLURAL: Final = "datavolumes"
SHORT_NAMES: Final = ("dv", "dvs")
CATEGORIES: Final = ("all",)

# Phases (CDI's DataVolumePhase values kvd reaches).
PENDING, WAIT_FOR_FIRST_CONSUMER = "Pending", "WaitForFirstConsumer"
IMPORT_SCHEDULED, IMPORT_IN_PROGRESS = "ImportScheduled", "ImportInProgress"
CLONE_SCHEDULED, CLONE_IN_PROGRESS = "CloneScheduled", "CloneInProgress"
SUCCEEDED, FAILED, UNKNOWN = "Succeeded", "Failed", "Unknown"
PHASES: Final = (
    "",
    PENDING,
    WAIT_FOR_FIRST_CONSUMER,
    IMPORT_SCHEDULED,
    IMPORT_IN_PROGRESS,
    CLONE_SCHEDULED,
    CLONE_IN_PROGRESS,
    SUCCEEDED,
    FAILED,
    UNKNOWN,
)
Phase = Literal[
    "",
    "Pending",
    "WaitForFirstConsumer",
    "ImportScheduled",
    "ImportInProgress",
    "CloneScheduled",
    "CloneInProgress",
    "Succeeded",
    "Failed",
    "Unknown",
]

# Conditions and CDI's reasons for them.
BOUND, RUNNING, READY = "Bound", "Running", "Ready"
REASON_BOUND, REASON_CLAIM_PENDING, REASON_NOT_FOUND = "Bound", "Pending", "NotFound"
REASON_COMPLETED, REASON_ERROR, REASON_POD_PENDING = "Completed", "Error", "Pending"
REASON_IMPORT_RUNNING = "Running"

# Annotations CDI puts on the PVC it creates for a DataVolume (pkg/controller/common).
ANN_SOURCE = "cdi.kubevirt.io/storage.import.source"
ANN_ENDPOINT = "cdi.kubevirt.io/storage.import.endpoint"
ANN_SECRET = "cdi.kubevirt.io/storage.import.secretName"
ANN_CERT_CONFIGMAP = "cdi.kubevirt.io/storage.import.certConfigMap"
ANN_CONTENT_TYPE = "cdi.kubevirt.io/storage.contentType"
ANN_POD_PHASE = "cdi.kubevirt.io/storage.pod.phase"
ANN_POD_RESTARTS = "cdi.kubevirt.io/storage.pod.restarts"
ANN_IMPORT_POD = "cdi.kubevirt.io/storage.import.importPodName"
ANN_CLONE_REQUEST = "k8s.io/CloneRequest"
ANN_BIND_IMMEDIATE = "cdi.kubevirt.io/storage.bind.immediate.requested"
ANN_CREATED_FOR = "cdi.kubevirt.io/createdForDataVolume"
LABEL_APP = "app"
APP_CDI = "containerized-data-importer"

FILESYSTEM_OVERHEAD: Final = 0.055  # CDI's default: the share of a Filesystem PVC kept free


@dataclass(frozen=True, kw_only=True)
class HTTPSource:
    url: str = field("The URL of the image (qcow2 or raw).")
    secret_ref: str | None = optional(
        "A Secret in the DataVolume's namespace with accessKeyId and secretKey (basic auth)."
    )
    cert_config_map: str | None = optional(
        "A ConfigMap in the DataVolume's namespace whose values are PEM CA bundles to trust."
    )
    extra_headers: tuple[str, ...] = many("Extra HTTP headers, 'Name: value'.")


@dataclass(frozen=True, kw_only=True)
class RegistrySource:
    url: str | None = optional("docker://IMAGE: a containerDisk image.")
    secret_ref: str | None = optional("Pull secret (unused in the local cluster's image store).")
    cert_config_map: str | None = optional("CA of the registry (unused locally).")
    pull_method: Literal["pod", "node"] | None = optional("pod or node.")


@dataclass(frozen=True, kw_only=True)
class PVCSource:
    namespace: str = field("Namespace of the claim to clone.")
    name: str = field("Name of the claim to clone.")


@dataclass(frozen=True, kw_only=True)
class BlankSource:
    """An empty disk image."""


@dataclass(frozen=True, kw_only=True)
class DataVolumeSource:
    ONE_OF = one_of("http", "registry", "pvc", "blank")

    http: HTTPSource | None = optional("Import from an HTTP(S) URL.")
    registry: RegistrySource | None = optional("Import the disk of a containerDisk image.")
    pvc: PVCSource | None = optional("Clone another PersistentVolumeClaim.")
    blank: BlankSource | None = optional("An empty disk.")


@dataclass(frozen=True, kw_only=True)
class ResourceRequirements:
    requests: dict[str, Quantity] = mapping("Requested resources (storage).")
    limits: dict[str, Quantity] = mapping("Limits.")


@dataclass(frozen=True, kw_only=True)
class StorageSpec:
    """CDI's StorageSpec: what is unset is filled from the cluster (class, modes, size)."""

    access_modes: tuple[
        Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"], ...
    ] = many("Access modes; default ReadWriteOnce.")
    volume_mode: Literal["Filesystem", "Block"] | None = optional("Filesystem (default) or Block.")
    storage_class_name: str | None = optional("The StorageClass; default: the cluster's.")
    resources: ResourceRequirements | None = optional("resources.requests.storage: the size.")
    selector: JSONObject | None = optional("A label query over volumes.")
    volume_name: str | None = optional("Bind to this PersistentVolume.")
    data_source: JSONObject | None = optional("Unsupported by kvd.")
    data_source_ref: JSONObject | None = optional("Unsupported by kvd.")


@dataclass(frozen=True, kw_only=True)
class DataVolumeSpec:
    source: DataVolumeSource | None = optional("Where the data comes from.")
    source_ref: JSONObject | None = optional("A DataSource (not supported by kvd).")
    storage: StorageSpec | None = optional("The claim to create, defaults filled.")
    pvc: dict[str, Any] | None = optional("A PersistentVolumeClaimSpec, taken as written.")
    content_type: Literal["kubevirt", "archive"] | None = optional("kubevirt (a disk image).")
    preallocation: bool | None = optional("Preallocate the disk (not supported by kvd).")
    priority_class_name: str | None = optional("Priority class of the importer pod.")
    checkpoints: tuple[JSONObject, ...] = many("Multi-stage imports (not supported by kvd).")
    final_checkpoint: bool | None = optional("Multi-stage imports (not supported by kvd).")


@dataclass(frozen=True, kw_only=True)
class DataVolumeCondition:
    type: Literal["Bound", "Running", "Ready"] = field("Bound, Running or Ready.")
    status: Literal["True", "False", "Unknown"] = field("True, False or Unknown.")
    reason: str | None = optional("CamelCase reason.")
    message: str | None = optional("Detail.")
    last_transition_time: str | None = optional("Last change.", format=DATE_TIME)
    last_heartbeat_time: str | None = optional("Last update.", format=DATE_TIME)


@dataclass(frozen=True, kw_only=True)
class DataVolumeStatus:
    phase: Phase | None = optional("Where the import is.")
    progress: str | None = optional('Import progress, "N.NN%" or "N/A".')
    restart_count: int | None = optional("How many times the importer pod restarted.")
    claim_name: str | None = optional("The PVC this DataVolume fills.")
    conditions: tuple[DataVolumeCondition, ...] = many("Bound, Running, Ready.")


@dataclass(frozen=True, kw_only=True)
class DataVolume:
    api_version: str = field("cdi.kubevirt.io/v1beta1.")
    kind: Literal["DataVolume"] = field("DataVolume.")
    metadata: ObjectMeta = field("Standard object metadata.", default=ObjectMeta())
    spec: DataVolumeSpec = field("What to import, and into what claim.")
    status: DataVolumeStatus | None = optional("Written by kvd's DataVolume controller.")


PRINTER_COLUMNS: Final = (
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "The phase"},
    {
        "name": "Progress",
        "type": "string",
        "jsonPath": ".status.progress",
        "description": "Transfer progress in percentage if known, N/A otherwise",
    },
    {
        "name": "Restarts",
        "type": "integer",
        "jsonPath": ".status.restartCount",
        "description": "The number of times the transfer has been restarted.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

# Fields the types declare (CDI's schema) that kvd refuses, with why.
NOT_SUPPORTED: Final = {
    ("spec", "sourceRef"): "DataSources",
    ("spec", "preallocation"): "preallocation",
    ("spec", "checkpoints"): "multi-stage (warm) imports",
    ("spec", "finalCheckpoint"): "multi-stage (warm) imports",
    ("spec", "storage", "dataSource"): "populators",
    ("spec", "storage", "dataSourceRef"): "populators",
}


def load(data: object) -> DataVolume:
    """Decode and validate a DataVolume (status ignored); `ValidationError` names every field."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "status"}
    dv = codec.decode(DataVolume, data)
    errors = validate(dv, data if isinstance(data, dict) else {})
    if errors:
        raise ValidationError(errors)
    return dv


def validate(dv: DataVolume, raw: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    root = Path()
    if dv.api_version != f"{GROUP}/{VERSION}":
        errors.append((root / "apiVersion").error(f'must be "{GROUP}/{VERSION}"'))
    for where, feature in NOT_SUPPORTED.items():
        node: Any = raw
        for part in where:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            path = root
            for part in where:
                path = path / part
            errors.append(path.error(f"field not supported by kvd yet ({feature})"))
    spec = dv.spec
    if spec.source is None and spec.source_ref is None:
        errors.append((root / "spec" / "source").error("a source is required"))
    if (spec.storage is None) == (spec.pvc is None):
        errors.append((root / "spec").error("exactly one of storage and pvc must be set"))
    if spec.content_type == "archive":
        errors.append((root / "spec" / "contentType").error("archive is not supported by kvd"))
    if spec.pvc is not None and not size_of(dv):
        errors.append(
            (root / "spec" / "pvc" / "resources" / "requests" / "storage").error("is required")
        )
    registry = spec.source.registry if spec.source else None
    if registry is not None and not (registry.url or "").startswith("docker://"):
        errors.append(
            (root / "spec" / "source" / "registry" / "url").error('must start with "docker://"')
        )
    return errors


def size_of(dv: DataVolume) -> str | None:
    """The requested size as written, or None when the spec leaves it to be found."""
    if dv.spec.pvc is not None:
        requests = (dv.spec.pvc.get("resources") or {}).get("requests") or {}
        size = requests.get("storage")
        return str(size) if size is not None else None
    storage = dv.spec.storage
    if storage is not None and storage.resources is not None:
        size_q = storage.resources.requests.get("storage")
        return str(size_q) if size_q is not None else None
    return None


def crd() -> dict[str, Any]:
    from kvd.api import openapi  # noqa: PLC0415 - openapi imports kinds; keep this module light

    schema = openapi.root_schema(DataVolume)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kvd"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "additionalPrinterColumns": list(PRINTER_COLUMNS),
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base
