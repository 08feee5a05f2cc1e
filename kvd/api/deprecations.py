"""What KubeVirt still accepts but warns about, in its words.

KubeVirt's validating webhooks answer some requests with warnings rather than refusals: the
object is stored, and `kubectl` prints `Warning: <text>` for each. kvd's API boundary returns the
same texts, so a manifest that draws a warning from KubeVirt draws it from kvd too.
"""

from __future__ import annotations

from typing import Final

from kvd.api import vm as vmtypes
from kvd.api.kinds import APIObject

RUNNING: Final = "spec.running is deprecated, please use spec.runStrategy instead."


def warnings(obj: APIObject) -> list[str]:
    """The warnings KubeVirt's admission gives for `obj` (a loaded, defaulted object)."""
    found = []
    if isinstance(obj, vmtypes.VirtualMachine) and obj.spec.running is not None:
        found.append(RUNNING)
    return found
