"""`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`: what `kubectl get` prints.

kube-apiserver renders tables server-side: a CRD's `additionalPrinterColumns` (JSONPath) after
NAME, `date` columns as a human age ("5m"), and for built-in kinds the columns kubectl users
know (pods: READY, STATUS, RESTARTS, AGE). Each row carries the object's metadata (or the whole
object with `includeObject=Object`), which kubectl uses for `-o name` and watch updates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kvd.local.apiserver import jsonpath
from kvd.local.apiserver.aggregation import columns as apiservice_columns
from kvd.local.apiserver.registry import Column, ResourceDef

AGE = Column("Age", "date", ".metadata.creationTimestamp")
NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}


def human_duration(seconds: float) -> str:
    """apimachinery's HumanDuration: 42s, 5m10s, 3h4m, 2d5h, 45d, 3y100d."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d{rem}h" if rem else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any) -> Any:
    if not isinstance(timestamp, str):
        return "<unknown>"
    try:
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    return human_duration((datetime.now(UTC) - when).total_seconds())


def _pod_ready(pod: dict[str, Any]) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(pod: dict[str, Any]) -> str:
    """kubectl's STATUS column, computed as the kube-apiserver's pod printer does."""
    status = pod.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    init_specs = (pod.get("spec") or {}).get("initContainers") or []
    for i, s in enumerate(status.get("initContainerStatuses") or []):
        state = s.get("state") or {}
        done = state.get("terminated") or {}
        if done and done.get("exitCode") == 0:
            continue
        if done:
            reason = "Init:" + (done.get("reason") or f"ExitCode:{done.get('exitCode')}")
        elif (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        break
    else:
        running = False
        for s in reversed(status.get("containerStatuses") or []):
            state = s.get("state") or {}
            waiting, done = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = str(waiting["reason"])
            elif done is not None:
                reason = str(
                    done.get("reason")
                    or (f"Signal:{done['signal']}" if done.get("signal") else None)
                    or f"ExitCode:{done.get('exitCode')}"
                )
            elif s.get("ready") and "running" in state:
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return reason


def _restarts(pod: dict[str, Any]) -> int:
    return sum(
        int(s.get("restartCount", 0))
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _node_status(node: dict[str, Any]) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            status = "Ready" if c.get("status") == "True" else "NotReady"
            if (node.get("spec") or {}).get("unschedulable"):
                status += ",SchedulingDisabled"
            return status
    return "Unknown"


def _involved(event: dict[str, Any]) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _binding_cells(binding: dict[str, Any]) -> list[Any]:
    """ROLE and AGE, then (kubectl -o wide) the subjects by kind, as kube's printer lists them
    (a service account as namespace/name)."""
    ref = binding.get("roleRef") or {}
    subjects = [s for s in binding.get("subjects") or [] if isinstance(s, dict)]

    def named(kind: str) -> str:
        return ", ".join(str(s.get("name", "")) for s in subjects if s.get("kind") == kind)

    accounts = ", ".join(
        f"{s.get('namespace', '')}/{s.get('name', '')}"
        for s in subjects
        if s.get("kind") == "ServiceAccount"
    )
    return [
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age(binding["metadata"].get("creationTimestamp")),
        named("User"),
        named("Group"),
        accounts,
    ]


Builtin = tuple[list[dict[str, Any]], Callable[[dict[str, Any]], list[Any]]]


def _col(name: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": kind, "format": "", "description": name, "priority": priority}


_BINDING_COLUMNS = [
    _col("Role"),
    _col("Age"),
    _col("Users", priority=1),
    _col("Groups", priority=1),
    _col("ServiceAccounts", priority=1),
]

_BUILTIN: dict[tuple[str, str], Builtin] = {
    ("", "pods"): (
        [
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
        ],
        lambda o: [
            _pod_ready(o),
            _pod_status(o),
            str(_restarts(o)),
            age(o["metadata"].get("creationTimestamp")),
            (o.get("status") or {}).get("podIP") or "<none>",
            (o.get("spec") or {}).get("nodeName") or "<none>",
        ],
    ),
    ("", "nodes"): (
        [_col("Status"), _col("Roles"), _col("Age"), _col("Version")],
        lambda o: [
            _node_status(o),
            "<none>",
            age(o["metadata"].get("creationTimestamp")),
            ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""),
        ],
    ),
    ("", "namespaces"): (
        [_col("Status"), _col("Age")],
        lambda o: [
            (o.get("status") or {}).get("phase")
            or ("Terminating" if o["metadata"].get("deletionTimestamp") else "Active"),
            age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    ("", "events"): (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        lambda o: [
            age(
                o.get("lastTimestamp")
                or o.get("eventTime")
                or o["metadata"].get("creationTimestamp")
            ),
            o.get("type", ""),
            o.get("reason", ""),
            _involved(o),
            o.get("message", ""),
        ],
    ),
    ("events.k8s.io", "events"): (  # the same columns, from events.k8s.io's field names
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        lambda o: [
            age(
                o.get("deprecatedLastTimestamp")
                or (o.get("series") or {}).get("lastObservedTime")
                or o.get("eventTime")
                or o["metadata"].get("creationTimestamp")
            ),
            o.get("type", ""),
            o.get("reason", ""),
            _involved({"involvedObject": o.get("regarding")}),
            o.get("note", ""),
        ],
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [_col("Created At", "date")],
        lambda o: [o["metadata"].get("creationTimestamp", "")],
    ),
    ("rbac.authorization.k8s.io", "roles"): (
        [_col("Created At", "date")],
        lambda o: [o["metadata"].get("creationTimestamp", "")],
    ),
    ("rbac.authorization.k8s.io", "clusterroles"): (
        [_col("Created At", "date")],
        lambda o: [o["metadata"].get("creationTimestamp", "")],
    ),
    ("rbac.authorization.k8s.io", "rolebindings"): (_BINDING_COLUMNS, _binding_cells),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): (
        _BINDING_COLUMNS,
        _binding_cells,
    ),
}

_BUILTIN[("apiregistration.k8s.io", "apiservices")] = (
    [_col("Service"), _col("Available"), _col("Age")],
    lambda o: [
        apiservice_columns.service(o),
        apiservice_columns.available(o),
        age(o["metadata"].get("creationTimestamp")),
    ],
)


def columns_for(
    resource: ResourceDef, version: str
) -> tuple[list[dict[str, Any]], Callable[[dict[str, Any]], list[Any]]]:
    builtin = _BUILTIN.get((resource.group, resource.plural))
    if builtin is not None:
        builtin_defs, builtin_cells = builtin
        return [NAME, *builtin_defs], lambda o: [o["metadata"].get("name", ""), *builtin_cells(o)]
    v = resource.version(version)
    columns = list(v.columns) if v is not None and v.columns else [AGE]
    compiled = [(c, jsonpath.compile(c.json_path)) for c in columns]
    defs = [NAME] + [
        {
            "name": c.name,
            "type": c.type,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }
        for c in columns
    ]

    def cells(o: dict[str, Any]) -> list[Any]:
        row: list[Any] = [o["metadata"].get("name", "")]
        for c, path in compiled:
            try:
                found = path.find(o)
            except jsonpath.JSONPathError:
                found = []
            if c.type == "date":
                row.append(age(found[0]) if found else None)
            else:
                row.append(jsonpath.format_cell(found, c.type))
        return row

    return defs, cells


def table(
    resource: ResourceDef,
    version: str,
    items: list[dict[str, Any]],
    *,
    include: str,
    list_meta: dict[str, Any],
) -> dict[str, Any]:
    defs, cells = columns_for(resource, version)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": [row(o, cells, include=include) for o in items],
    }


def row(
    obj: dict[str, Any], cells: Callable[[dict[str, Any]], list[Any]], *, include: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"cells": cells(obj)}
    if include == "Object":
        out["object"] = obj
    elif include != "None":
        out["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return out
