"""kvd's own per-domain state, kept in the domain's `<metadata>` (vdsm's `metadata.py`).

A restarted launcher finds its domain in libvirt and must know, without asking anyone, which
VMI it is, its grace period, and whether (and when) a shutdown was already requested — so the
grace period keeps counting from the first request instead of restarting. The state lives in
one element in kvd's namespace:

    <metadata>
      <kvd:vmi xmlns:kvd="https://kvd.dev/launcher/v1">
        <kvd:uid>…</kvd:uid> <kvd:namespace>…</kvd:namespace> <kvd:name>…</kvd:name>
        <kvd:grace-period-seconds>30</kvd:grace-period-seconds>
        <kvd:shutdown-requested-at>2025-01-01T00:00:00Z</kvd:shutdown-requested-at>
      </kvd:vmi>
    </metadata>

The domain manager updates it with `virDomainSetMetadata(ELEMENT, render_metadata(m),
METADATA_PREFIX, METADATA_NAMESPACE)`. libvirt (9.0, checked) wants that fragment without
prefixes or namespace declarations — it adds both itself and refuses XML that declares them —
and `virDomainGetMetadata` hands it back the same way. `read_metadata` reads either that bare
fragment or a whole domain XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.converter.context import ConverterContext
from kvd.launcher.converter.errors import ContextError, ConversionError

METADATA_NAMESPACE: Final = "https://kvd.dev/launcher/v1"
METADATA_PREFIX: Final = "kvd"
_ROOT: Final = "vmi"


@dataclass(frozen=True, kw_only=True)
class DomainMetadata:
    uid: str
    namespace: str
    name: str
    grace_period_seconds: int
    shutdown_requested_at: datetime | None = None  # set by the domain manager, timezone-aware

    def __post_init__(self) -> None:
        when = self.shutdown_requested_at
        if when is not None and when.utcoffset() is None:
            raise ValueError("shutdown_requested_at must be timezone-aware")


def from_vmi(vmi: VirtualMachineInstance, ctx: ConverterContext) -> DomainMetadata:
    """The state a freshly defined domain starts with: no shutdown requested yet."""
    meta = vmi.metadata
    if not meta.namespace or not meta.name:
        raise ConversionError(
            "metadata.namespace and metadata.name are required: they name the domain"
        )
    if meta.uid is not None and meta.uid != ctx.vmi_uid:
        raise ContextError(
            f"the VMI's uid {meta.uid} is not this launcher's ({ctx.vmi_uid}): "
            "refusing to define another VMI's domain"
        )
    return DomainMetadata(
        uid=ctx.vmi_uid,
        namespace=meta.namespace,
        name=meta.name,
        grace_period_seconds=ctx.grace_period_seconds,
    )


def _fields(meta: DomainMetadata) -> list[tuple[str, str]]:
    fields = [
        ("uid", meta.uid),
        ("namespace", meta.namespace),
        ("name", meta.name),
        ("grace-period-seconds", str(meta.grace_period_seconds)),
    ]
    if meta.shutdown_requested_at is not None:
        when = meta.shutdown_requested_at.astimezone(UTC).isoformat()
        fields.append(("shutdown-requested-at", when.replace("+00:00", "Z")))
    return fields


def element(meta: DomainMetadata) -> ET.Element:
    """The prefixed element for the domain XML, written as libvirt itself writes it back."""
    # Literal prefixed tags keep ElementTree's global namespace registry out of this.
    element = ET.Element(
        f"{METADATA_PREFIX}:{_ROOT}", {f"xmlns:{METADATA_PREFIX}": METADATA_NAMESPACE}
    )
    for tag, value in _fields(meta):
        ET.SubElement(element, f"{METADATA_PREFIX}:{tag}").text = value
    return element


def render_metadata(meta: DomainMetadata) -> str:
    """The bare fragment `virDomainSetMetadata` expects (no prefix, no namespace)."""
    element = ET.Element(_ROOT)
    for tag, value in _fields(meta):
        ET.SubElement(element, tag).text = value
    return ET.tostring(element, encoding="unicode")


def read_metadata(xml: str) -> DomainMetadata:
    """kvd's state from a domain XML or a `virDomainGetMetadata` fragment."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConversionError(f"cannot read kvd metadata: not XML: {exc}") from exc
    element = _find(root)
    values: dict[str, str] = {}
    for child in element:
        namespace, tag = _split(child.tag)
        if namespace in (None, METADATA_NAMESPACE):
            values[tag] = (child.text or "").strip()
    try:
        when = values.get("shutdown-requested-at")
        return DomainMetadata(
            uid=values["uid"],
            namespace=values["namespace"],
            name=values["name"],
            grace_period_seconds=int(values["grace-period-seconds"]),
            shutdown_requested_at=datetime.fromisoformat(when) if when else None,
        )
    except KeyError as exc:
        raise ConversionError(f"kvd metadata lacks <{exc.args[0]}>") from exc
    except ValueError as exc:
        raise ConversionError(f"kvd metadata is malformed: {exc}") from exc


def _find(root: ET.Element) -> ET.Element:
    qualified = f"{{{METADATA_NAMESPACE}}}{_ROOT}"
    if root.tag in (qualified, _ROOT):
        return root
    if root.tag == "domain":
        found = root.find(f"metadata/{qualified}")
        if found is not None:
            return found
    raise ConversionError(
        f"no kvd metadata (<{_ROOT}> in namespace {METADATA_NAMESPACE}) in this XML: "
        "not a domain kvd defined"
    )


def _split(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag
