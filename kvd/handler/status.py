"""What the handler writes into a VMI's status, computed from what it observed (pure).

`change()` returns only the fields that differ from the current status (nothing when the VMI
already says it all): phase and, once final, its reason; `interfaces` and `guestOSInfo` as the
launcher reports them; the conditions the handler owns (Ready, SoftwareEmulation, Paused, and
Synchronized while the launcher refuses the domain), transition times kept unless a status
flips; a `phaseTransitionTimestamps` entry per phase entered.
"""

from __future__ import annotations

from typing import Any

from kvd.api import phases
from kvd.api.defaults import DEFAULT_GRACE_PERIOD_SECONDS
from kvd.conditions import condition as make_condition
from kvd.handler import phase
from kvd.rpc.launcher.v1 import domain_pb2

Json = dict[str, Any]

OWNED_CONDITIONS = ("Ready", "SoftwareEmulation", "Paused")


def change(
    status: Json,
    *,
    decision: phase.Decision,
    observed: phase.Observed,
    domain: domain_pb2.Domain | None,
    emulated: bool,
    synchronized: tuple[bool, str, str] | None,
    now: str,
) -> Json:
    """The status fields to patch ({} when nothing changed)."""
    ready = (
        decision.phase == phases.RUNNING
        and domain is not None
        and domain.state
        in (
            domain_pb2.DOMAIN_STATE_RUNNING,
            domain_pb2.DOMAIN_STATE_BLOCKED,
        )
    )
    wanted: Json = {}
    if domain is not None:
        if domain.interfaces:
            wanted["interfaces"] = [_interface(i) for i in domain.interfaces]
        if domain.guest_os_info.name or domain.guest_os_info.id:
            wanted["guestOSInfo"] = _guest_os(domain.guest_os_info)
    old = {c["type"]: c for c in status.get("conditions") or []}
    conditions = [c for c in status.get("conditions") or [] if c["type"] not in OWNED_CONDITIONS]
    if synchronized is not None:
        conditions = [c for c in conditions if c["type"] != "Synchronized"]
        conditions.append(
            make_condition(old.get("Synchronized"), "Synchronized", *synchronized, now=now)
        )
    elif "Synchronized" in old and old["Synchronized"].get("reason") == "SyncFailed":
        conditions = [c for c in conditions if c["type"] != "Synchronized"]
    for kind, ok, reason in phase.conditions(observed, emulated=emulated, ready=ready):
        if kind == "Ready" and not ok:
            message = decision.message
        else:
            message = phase.PAUSED_MESSAGES.get(reason or "") if kind == "Paused" else None
        conditions.append(make_condition(old.get(kind), kind, ok, reason, message, now=now))
    wanted["conditions"] = conditions
    moved = phases.move(status, decision.phase, reason=decision.reason, now=now)
    return {**moved, **{k: v for k, v in wanted.items() if status.get(k) != v}}


def grace(vmi: Json) -> int:
    value = (vmi.get("spec") or {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_PERIOD_SECONDS if value is None else int(value)


def acpi(vmi: Json) -> bool:
    """As KubeVirt counts it: ACPI on in the spec (the default) and a grace period above 0."""
    features = ((vmi.get("spec") or {}).get("domain") or {}).get("features") or {}
    spec = features.get("acpi")
    on = spec is None or spec.get("enabled", True) is not False
    return on and grace(vmi) > 0


def ended(domain: domain_pb2.Domain) -> bool:
    """SHUTOFF or CRASHED after having run (a stop reason, not just 'defined')."""
    return domain.state in (
        domain_pb2.DOMAIN_STATE_SHUTOFF,
        domain_pb2.DOMAIN_STATE_CRASHED,
    ) and not not_started(domain)


def not_started(domain: domain_pb2.Domain | None) -> bool:
    """No domain, or one defined and never started (SHUTOFF for no particular reason)."""
    return domain is None or (
        domain.state in (domain_pb2.DOMAIN_STATE_SHUTOFF, domain_pb2.DOMAIN_STATE_NOSTATE)
        and domain.reason
        in (
            domain_pb2.DOMAIN_STATE_REASON_UNSPECIFIED,
            domain_pb2.DOMAIN_STATE_REASON_UNKNOWN,
            domain_pb2.DOMAIN_STATE_REASON_NON_EXISTENT,
        )
    )


def _interface(i: domain_pb2.DomainInterface) -> Json:
    out: Json = {"name": i.name, "mac": i.mac_address}
    if i.ip_addresses:
        out["ipAddress"] = i.ip_addresses[0]
        out["ipAddresses"] = list(i.ip_addresses)
    if i.guest_interface_name:
        out["interfaceName"] = i.guest_interface_name
    return out


def _guest_os(g: domain_pb2.GuestOsInfo) -> Json:
    fields = {
        "id": g.id,
        "name": g.name,
        "prettyName": g.pretty_name,
        "version": g.version,
        "versionId": g.version_id,
        "kernelRelease": g.kernel_release,
        "kernelVersion": g.kernel_version,
        "machine": g.machine,
    }
    return {k: v for k, v in fields.items() if v}
