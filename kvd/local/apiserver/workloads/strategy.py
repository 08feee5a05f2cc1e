"""kube-apiserver's REST strategies for the workload kinds, as one link of the admission chain:
a Service's cluster IP and node ports (`services.ServiceAllocation`), and an apps workload's
selector, which never changes once created (apps/v1's ValidateUpdate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kvd.local.apiserver import errors
from kvd.local.apiserver.kinds import apps
from kvd.local.apiserver.registry import ResourceDef
from kvd.local.apiserver.store import Store
from kvd.local.apiserver.workloads.services import ServiceAllocation


class WorkloadStrategy:
    def __init__(self, store: Store) -> None:
        self.services = ServiceAllocation(store)

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> Sequence[str]:
        return self.services.on_create(resource, obj)

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> Sequence[str]:
        if resource.group == apps.GROUP and resource.crd_name is None:
            causes = apps.immutable_causes(resource.kind, old, new)
            if causes:
                name = str((new.get("metadata") or {}).get("name", ""))
                raise errors.invalid(apps.GROUP, resource.kind, name, causes)
        return self.services.on_update(resource, old, new)
