"""`<clock>`: UTC, with the timer policies libvirt and virt-install use for Linux guests.

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


def clock() -> ET.Element:
    element = ET.Element("clock", offset="utc")
    ET.SubElement(element, "timer", name="rtc", tickpolicy="catchup")
    ET.SubElement(element, "timer", name="pit", tickpolicy="delay")
    ET.SubElement(element, "timer", name="hpet", present="no")
    return element
