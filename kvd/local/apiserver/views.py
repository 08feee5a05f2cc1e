"""One store, two APIs: resources served as another resource's objects in another shape.

kube-apiserver stores an Event once and serves it as core/v1 and as events.k8s.io/v1, whichever
API wrote it; the field names differ (`message` is `note`, `involvedObject` is `regarding`,
`reportingComponent` is `reportingController`, `source`, `firstTimestamp`, `lastTimestamp`
and `count` are `deprecated*`). Here the stored form is core/v1's: `to_view` shapes a stored
object for the API it is read through, `to_storage` shapes what a client of the view wrote.
For every resource that is not a view both are the identity.

Selection (field and label selectors) runs on the stored form, which is why a view's field
selectors are declared in the registry as paths into the stored object.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.registry import ResourceDef

# events.k8s.io/v1 field → core/v1 field; the others (metadata, eventTime, series, action,
# reason, related, reportingInstance, type) are the same in both
_EVENT_FIELDS = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
_SHARED_EVENT_FIELDS = (
    "metadata",
    "eventTime",
    "series",
    "action",
    "reason",
    "related",
    "reportingInstance",
    "type",
)


def to_view(resource: ResourceDef, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored object as `resource`'s API shows it (the same dict when not a view)."""
    if (resource.group, resource.plural) != ("events.k8s.io", "events"):
        return stored
    out: dict[str, Any] = {"apiVersion": stored.get("apiVersion"), "kind": "Event"}
    out.update(_renamed(stored, [(core, view) for view, core in _EVENT_FIELDS]))
    out.setdefault("eventTime", None)  # required and never omitted in this API, even if unset
    return out


def to_storage(resource: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
    """What a client of `resource`'s API wrote, in the stored form (the same dict when not a
    view)."""
    if (resource.group, resource.plural) != ("events.k8s.io", "events"):
        return obj
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    out.update(_renamed(obj, list(_EVENT_FIELDS)))
    return out


def _renamed(obj: dict[str, Any], renames: list[tuple[str, str]]) -> dict[str, Any]:
    """The shared fields of an Event and the renamed ones, leaving out what is unset."""
    out = {k: obj[k] for k in _SHARED_EVENT_FIELDS if obj.get(k) is not None}
    out.update({new: obj[old] for old, new in renames if obj.get(old) is not None})
    return out
