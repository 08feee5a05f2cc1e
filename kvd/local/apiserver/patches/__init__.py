"""The three PATCH bodies kube-apiserver accepts, applied to plain JSON values.

* ``merge_patch`` (``merge``): RFC 7386 JSON merge patch (``application/merge-patch+json``).
* ``json_patch`` (``jsonpatch``): RFC 6902 JSON patch (``application/json-patch+json``), and the
  JSON equality and error wording the other two share.
* ``strategic_merge_patch`` (``strategic``): Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``), which ``kubectl apply`` and ``kubectl patch`` send
  for built-in kinds, with the per-kind merge keys it needs.

Callers (object and CRD writes) import this package, not its modules: they pick a function by
content type and handle one family of errors (``PatchError``, with ``UnsupportedPatchTypeError``
for a strategic merge patch on a custom resource) whichever body it was. Every function returns a
new value and leaves its inputs alone: the store hands out cached objects.
"""

from __future__ import annotations

from kvd.local.apiserver.patches.jsonpatch import (
    MAX_JSON_PATCH_OPERATIONS,
    PatchError,
    json_equal,
    json_patch,
)
from kvd.local.apiserver.patches.merge import merge_patch
from kvd.local.apiserver.patches.strategic import (
    UnsupportedPatchTypeError,
    merge_keys,
    strategic_merge_patch,
    supports_strategic_merge,
)

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "PatchError",
    "UnsupportedPatchTypeError",
    "json_equal",
    "json_patch",
    "merge_keys",
    "merge_patch",
    "strategic_merge_patch",
    "supports_strategic_merge",
]
