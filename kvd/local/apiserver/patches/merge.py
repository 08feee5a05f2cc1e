"""RFC 7386 JSON merge patch (``application/merge-patch+json``).

The simplest of the three bodies: objects merge key by key, ``null`` deletes a key, anything else
(lists included) replaces what was there. ``kubectl patch --type=merge`` sends it, and it is the
only patch besides JSON patch that custom resources accept.
"""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
