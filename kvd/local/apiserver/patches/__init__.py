"""The three PATCH bodies kube-apiserver accepts, applied to plain JSON values.

* ``merge_patch``: RFC 7386 JSON merge patch (``application/merge-patch+json``), here.
* ``json_patch``: RFC 6902 JSON patch (``application/json-patch+json``), in ``jsonpatch``.
* ``strategic_merge_patch``: Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``), which ``kubectl apply`` and ``kubectl patch`` send
  for built-in kinds, in ``strategic`` with the per-kind merge keys it needs.

Callers (object and CRD writes) import only this module: they pick a function by content type and
handle one family of errors (``PatchError``, with ``UnsupportedPatchTypeError`` for a strategic
merge patch on a custom resource) whichever body it was. Every function returns a new value and
leaves its inputs alone: the store hands out cached objects.
"""

from __future__ import annotations

import copy
from typing import Any

from kvd.local.apiserver.patches.jsonpatch import (
    MAX_JSON_PATCH_OPERATIONS,
    PatchError,
    json_equal,
    json_patch,
)
from kvd.local.apiserver.patches.strategic import (
    UnsupportedPatchTypeError,
    strategic_merge_patch,
    supports_strategic_merge,
)

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "PatchError",
    "UnsupportedPatchTypeError",
    "json_equal",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
    "supports_strategic_merge",
]


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
