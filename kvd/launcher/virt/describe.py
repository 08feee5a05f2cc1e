"""A libvirt domain → the launcher's `Snapshot`: state, reason, interfaces, kvd metadata."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from kvd.launcher import converter, states
from kvd.launcher.converter import DomainMetadata
from kvd.launcher.model import Interface, Snapshot

# User-chosen device aliases must carry this prefix in libvirt; the converter names each
# interface after its VMI spec name this way.
_ALIAS_PREFIX = "ua-"


def snapshot(dom: Any, *, emulated: bool) -> Snapshot:
    state, reason = dom.state()
    xml = dom.XMLDesc(0)
    contract_state, contract_reason = states.from_libvirt(state, reason)
    return Snapshot(
        name=dom.name(),
        uuid=dom.UUIDString(),
        state=contract_state,
        reason=contract_reason,
        emulated=emulated,
        interfaces=interfaces(xml),
        metadata=_metadata(xml),
    )


def metadata(dom: Any) -> DomainMetadata | None:
    return _metadata(dom.XMLDesc(0))


def _metadata(xml: str) -> DomainMetadata | None:
    """kvd's state, or None for a domain kvd did not define (it has no kvd metadata)."""
    try:
        return converter.read_metadata(xml)
    except converter.ConversionError:
        return None


def interfaces(xml: str) -> tuple[Interface, ...]:
    root = ET.fromstring(xml)
    out = []
    for iface in root.iterfind("./devices/interface"):
        alias = iface.find("alias")
        mac = iface.find("mac")
        name = alias.get("name", "") if alias is not None else ""
        out.append(
            Interface(
                name=name.removeprefix(_ALIAS_PREFIX),
                mac_address=(mac.get("address", "") if mac is not None else "").lower(),
            )
        )
    return tuple(out)
