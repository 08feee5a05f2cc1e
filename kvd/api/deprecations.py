"""What KubeVirt still accepts but warns about, in its words.

KubeVirt's validating webhooks answer some requests with warnings rather than refusals: the
object is stored (in today's spelling: `defaults` converts a deprecated one), and `kubectl`
prints `Warning: <text>` for each. kvd's API boundary returns the same warnings, so a manifest
that draws a warning from KubeVirt draws it from kvd too. They are read from the manifest as
sent, before defaulting rewrites what they are about.
"""

from __future__ import annotations

from typing import Any, Final

from kvd.api.errors import Path
from kvd.api.kinds import KINDS, VM, VMI

RUNNING: Final = "spec.running is deprecated, please use spec.runStrategy instead."

# Deprecated spellings `kinds.load` still accepts: a volume source (in a VMI spec) → its successor.
_DEPRECATED_VOLUME_SOURCES: Final = {"registryDisk": "containerDisk"}


def warnings(data: object) -> list[str]:
    """The deprecation warnings of a manifest, in kube-apiserver's style; [] for anything else.

    Pure and total: it reads the manifest as given (invalid or not) and never raises. No
    double quotes: a warning travels as an HTTP `Warning` header's quoted text.
    """
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        return []
    found = []
    spec, path = data.get("spec"), Path("spec")
    if data["kind"] == VM.kind and isinstance(spec, dict) and spec.get("running") is not None:
        found.append(RUNNING)
    if data["kind"] != VMI.kind:
        template = spec.get("template") if isinstance(spec, dict) else None
        spec = template.get("spec") if isinstance(template, dict) else None
        path = path / "template" / "spec"
    if not isinstance(spec, dict):
        return found
    for i, volume in _items(spec.get("volumes")):
        for old, new in _DEPRECATED_VOLUME_SOURCES.items():
            if old in volume:
                found.append(f"{(path / 'volumes')[i] / old}: deprecated; use {new} instead")
    domain = spec.get("domain")
    devices = domain.get("devices") if isinstance(domain, dict) else None
    disks = devices.get("disks") if isinstance(devices, dict) else None
    for i, disk in _items(disks):
        named = disk.get("volumeName")
        if named is not None:
            where = (path / "domain" / "devices" / "disks")[i] / "volumeName"
            found.append(
                f"{where}: deprecated; a disk presents the volume of its own name, "
                f"use name: {named} instead"
            )
    return found


def _items(value: object) -> list[tuple[int, dict[str, Any]]]:
    items = value if isinstance(value, list) else []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]
