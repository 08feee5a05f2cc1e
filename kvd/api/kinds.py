"""The kubevirt.io kinds kvd serves: how each is named, parsed, defaulted, validated and printed.

`load` is the one pipeline every boundary uses (CLI, API admission, controller): decode strictly,
apply KubeVirt's defaults, validate, and raise `ValidationError` with every field error.
`warnings` lists the deprecated spellings a manifest uses, which `load` accepts and defaulting
converts; the API server returns them as `Warning` headers, as kube-apiserver does for
deprecated fields, and `kvd validate` prints them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from kvd.api import codec, defaults, unsupported, validation
from kvd.api import vm as vmtypes
from kvd.api import vmi as vmitypes
from kvd.api.errors import FieldError, Path, ValidationError

GROUP: Final = "kubevirt.io"
STORAGE_VERSION: Final = "v1"
SERVED_VERSIONS: Final = ("v1", "v1alpha3")
CATEGORIES: Final = ("all", "kubevirt")

APIObject = (
    vmitypes.VirtualMachineInstance
    | vmtypes.VirtualMachine
    | vmtypes.VirtualMachineInstanceReplicaSet
)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    priority: int = 0
    description: str | None = None


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    cls: type[Any]
    default: Callable[[Any], Any]
    validate: Callable[[Any], list[FieldError]]
    printer_columns: tuple[PrinterColumn, ...]
    status_subresource: bool = False
    scale_subresource: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def path(self, namespace: str, name: str = "") -> str:
        """The API path of the collection in `namespace`, or of the object `name` in it."""
        base = f"/apis/{GROUP}/{STORAGE_VERSION}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{name}" if name else base


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")
_READY = ".status.conditions[?(@.type=='Ready')].status"

VMI = Kind(
    kind="VirtualMachineInstance",
    plural="virtualmachineinstances",
    short_names=("vmi", "vmis"),
    cls=vmitypes.VirtualMachineInstance,
    default=defaults.vmi,
    validate=validation.vmi,
    printer_columns=(
        _AGE,
        PrinterColumn("Phase", "string", ".status.phase"),
        PrinterColumn("IP", "string", ".status.interfaces[0].ipAddress"),
        PrinterColumn("NodeName", "string", ".status.nodeName"),
        PrinterColumn("Ready", "string", _READY),
    ),
)
VM = Kind(
    kind="VirtualMachine",
    plural="virtualmachines",
    short_names=("vm", "vms"),
    cls=vmtypes.VirtualMachine,
    default=defaults.vm,
    validate=validation.vm,
    printer_columns=(
        _AGE,
        PrinterColumn("Status", "string", ".status.printableStatus"),
        PrinterColumn("Ready", "string", _READY),
    ),
    status_subresource=True,
)
VMIRS = Kind(
    kind="VirtualMachineInstanceReplicaSet",
    plural="virtualmachineinstancereplicasets",
    short_names=("vmirs", "vmirss"),
    cls=vmtypes.VirtualMachineInstanceReplicaSet,
    default=defaults.replica_set,
    validate=validation.replica_set,
    printer_columns=(
        PrinterColumn("Desired", "integer", ".spec.replicas", description="Number of desired VMIs"),
        PrinterColumn(
            "Current",
            "integer",
            ".status.replicas",
            description="Number of managed and not final or deleted VMIs",
        ),
        PrinterColumn(
            "Ready",
            "integer",
            ".status.readyReplicas",
            description="Number of managed VMIs which are ready to receive traffic",
        ),
        _AGE,
    ),
    status_subresource=True,
    scale_subresource=True,
)
KINDS: Final = {k.kind: k for k in (VMI, VM, VMIRS)}


def kind_of(data: object) -> Kind:
    """The kind a manifest declares, or a `ValidationError` naming `kind`."""
    name = data.get("kind") if isinstance(data, dict) else None
    if isinstance(name, str) and name in KINDS:
        return KINDS[name]
    if not isinstance(data, dict):
        raise ValidationError([Path().error(f"must be an object, got {codec.describe(data)}")])
    supported = ", ".join(f'"{k}"' for k in KINDS)
    shown = f'"{name}"' if isinstance(name, str) else codec.describe(name)
    feature = unsupported.kind_feature(name) if isinstance(name, str) else None
    why = "" if feature is None else f"not supported by kvd yet ({feature}); "
    raise ValidationError(
        [Path("kind").error(f"Unsupported value: {shown}: {why}supported values: {supported}")]
    )


def load(data: object) -> APIObject:
    """Decode, default and validate a kubevirt.io manifest."""
    kind = kind_of(data)
    obj = kind.default(codec.decode(kind.cls, data))
    errors = kind.validate(obj)
    if errors:
        raise ValidationError(errors)
    return obj  # type: ignore[no-any-return]  # Kind.cls ties the class to the union
