"""Server-side apply and managedFields, as kube-apiserver's field manager does them.

`fieldmanager` is the entry point (`for_target`, then `track_update` on every write and `apply`
for `application/apply-patch+yaml`); under it, `updater` decides ownership and conflicts,
`typed` walks objects (field sets, comparison, merge, pruning), `shapes` says how each field of
a kind merges, `fieldpath` is the set of paths and its `FieldsV1` form, and `managedfields` the
list's wire format and kube's rules for it. Everything below `fieldmanager` is pure.
"""

from __future__ import annotations

from kvd.local.apiserver.apply.fieldmanager import (
    APPLY_PATCH,
    FieldManager,
    check_field_manager,
    for_target,
    manager_name,
)
from kvd.local.apiserver.apply.managedfields import validation_causes

__all__ = [
    "APPLY_PATCH",
    "FieldManager",
    "check_field_manager",
    "for_target",
    "manager_name",
    "validation_causes",
]
