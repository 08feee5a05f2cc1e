"""`<clock>`: the spec's clock when it has one, else UTC with timers suited to Linux guests.

A `spec.domain.clock` is carried over as KubeVirt carries it: `utc` is offset utc (its
`offsetSeconds` an adjustment, else `reset`, so the guest starts at the host's UTC), `timezone`
is offset timezone, and each timer given becomes a `<timer>` with its tick policy (and the
RTC's track), present unless it says `present: false`. Only what the spec lists is there.

Without one, kvd picks the timer policies libvirt and virt-install use for Linux guests:

- `rtc` catchup: after the guest was paused or starved of CPU (common under TCG), missed
  RTC ticks are replayed faster, so guest time catches up instead of drifting.
- `pit` delay: late PIT ticks are delivered late rather than piled up; Linux counts time
  itself and a burst of ticks would only cost CPU. (With TCG the property targets the
  in-kernel PIT, which QEMU then just does not use; it still accepts it.)
- `hpet` off: an extra, costly-to-emulate timer that Linux does not need when the TSC and
  kvmclock (KVM) or the PIT/APIC (TCG) are there.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvd.api.vmi import Clock, VirtualMachineInstanceSpec


def clock(spec: VirtualMachineInstanceSpec) -> ET.Element:
    if spec.domain.clock is not None:
        return _from_spec(spec.domain.clock)
    element = ET.Element("clock", offset="utc")
    ET.SubElement(element, "timer", name="rtc", tickpolicy="catchup")
    ET.SubElement(element, "timer", name="pit", tickpolicy="delay")
    ET.SubElement(element, "timer", name="hpet", present="no")
    return element


def _from_spec(spec: Clock) -> ET.Element:
    if spec.timezone is not None:
        element = ET.Element("clock", offset="timezone", timezone=spec.timezone)
    elif spec.utc is not None:
        offset = spec.utc.offset_seconds
        adjustment = "reset" if offset is None else str(offset)
        element = ET.Element("clock", offset="utc", adjustment=adjustment)
    else:
        element = ET.Element("clock", offset="utc")
    timers = spec.timer
    if timers is None:
        return element
    # KubeVirt's order: rtc, pit, kvmclock, hpet.
    if timers.rtc is not None:
        _timer(element, "rtc", timers.rtc.enabled, timers.rtc.tick_policy, timers.rtc.track)
    if timers.pit is not None:
        _timer(element, "pit", timers.pit.enabled, timers.pit.tick_policy)
    if timers.kvm is not None:
        _timer(element, "kvmclock", timers.kvm.enabled)
    if timers.hpet is not None:
        _timer(element, "hpet", timers.hpet.enabled, timers.hpet.tick_policy)
    return element


def _timer(
    clock: ET.Element,
    name: str,
    enabled: bool | None,
    tick_policy: str | None = None,
    track: str | None = None,
) -> None:
    timer = ET.SubElement(clock, "timer", name=name)
    if tick_policy is not None:
        timer.set("tickpolicy", tick_policy)
    if track is not None:
        timer.set("track", track)
    timer.set("present", "no" if enabled is False else "yes")
