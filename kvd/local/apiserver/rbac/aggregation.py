"""The ClusterRole aggregation controller, as kube-controller-manager's.

A ClusterRole with `aggregationRule.clusterRoleSelectors` gets as its `rules` the union of the
rules of every other ClusterRole its selectors match: selector by selector, matching roles by
name, their rules in order, each rule once. So a `kubevirt.io:view` ClusterRole labelled
`rbac.authorization.k8s.io/aggregate-to-view: "true"` makes `view` (and, through it, `edit`
and `admin`) grant what it grants. The rules are written by server-side apply as the field
manager `clusterrole-aggregation-controller` (forcing, as kube's does), and only when they
change, so the writes settle: a pass that changes nothing writes nothing.

It runs in the server's event loop: woken by any ClusterRole's event (all roles are
recomputed, as kube enqueues every aggregated role on any change; there are few), each
written once with its final rules (a chain such as view → edit → admin is settled in memory
first), and a pass every `RECHECK_SECONDS` retries what failed. `settle()` does the same at
start, before the server answers, so `view` is complete from the first request.
"""

from __future__ import annotations

import json
from typing import Any

from kvd import logs
from kvd.local.apiserver import apply, selectors
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.rbac import rules as rbacrules
from kvd.local.apiserver.rbac.index import CLUSTER_ROLES
from kvd.local.apiserver.registry import RBAC_GROUP
from kvd.local.apiserver.store import Closed

log = logs.get_logger(__name__)

MANAGER = "clusterrole-aggregation-controller"
RECHECK_SECONDS = 60.0
_MAX_PASSES = 10  # a chain of aggregated roles settles in one pass per link


def aggregated_rules(roles: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """For each role with an aggregation rule, by name: the rules it should have."""
    by_name = sorted(roles, key=lambda r: str(r["metadata"]["name"]))
    out: dict[str, list[dict[str, Any]]] = {}
    for role in by_name:
        rule = role.get("aggregationRule")
        if not isinstance(rule, dict):
            continue
        name = role["metadata"]["name"]
        seen: set[rbacrules.PolicyRule] = set()
        gathered: list[dict[str, Any]] = []
        for raw in rule.get("clusterRoleSelectors") or ():
            try:
                chosen = selectors.from_label_selector_object(raw)
            except selectors.SelectorError:
                continue  # validation refuses such a selector; an older object keeps its rules
            for other in by_name:
                labels = other["metadata"].get("labels") or {}
                if other["metadata"]["name"] == name or not chosen.matches(labels):
                    continue
                for one in rbacrules.parse_all(other.get("rules")):
                    if one not in seen:
                        seen.add(one)
                        gathered.append(one.json())
        out[name] = gathered
    return out


def settled_rules(roles: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """`aggregated_rules` until it no longer changes: a role aggregated into another (view
    into edit into admin) counts with its own aggregated rules, so each role is written once."""
    current = {r["metadata"]["name"]: r for r in roles}
    wanted = aggregated_rules(roles)
    for _ in range(_MAX_PASSES):
        stale = {
            name: rules
            for name, rules in wanted.items()
            if rbacrules.parse_all(current[name].get("rules")) != rbacrules.parse_all(rules)
        }
        if not stale:
            break
        current.update({name: {**current[name], "rules": rules} for name, rules in stale.items()})
        wanted = aggregated_rules(list(current.values()))
    return wanted


class AggregationController:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.store = objects.store
        resource = objects.registry.get(RBAC_GROUP, "clusterroles")
        assert resource is not None
        self.resource = resource

    def sync(self) -> int:
        """Write every aggregated role whose rules are not what they should be; returns how
        many it wrote."""
        roles, _ = self.store.list(CLUSTER_ROLES, None)
        current = {r["metadata"]["name"]: r for r in roles}
        written = 0
        for name, wanted in settled_rules(roles).items():
            have = rbacrules.parse_all(current[name].get("rules"))
            if have == rbacrules.parse_all(wanted):
                continue
            try:
                self._write(name, wanted)
            except APIError as exc:
                log.warning("clusterrole_not_aggregated", clusterrole=name, error=str(exc))
                continue
            written += 1
            log.info("clusterrole_aggregated", clusterrole=name, rules=len(wanted))
        return written

    def settle(self) -> None:
        """Sync until nothing is written (once, unless a write failed or raced another)."""
        for _ in range(_MAX_PASSES):
            if not self.sync():
                return

    def _write(self, name: str, rules: list[dict[str, Any]]) -> None:
        config = {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        }
        self.objects.patch(
            Target(self.resource, "v1", "", name),
            json.dumps(config).encode(),
            apply.APPLY_PATCH,
            validation="Strict",
            dry_run=False,
            manager=MANAGER,
            force=True,
        )

    async def run(self) -> None:
        watcher = self.store.watch(CLUSTER_ROLES, None, self.store.revision)
        try:
            self.settle()
            while True:
                event = await watcher.next(timeout=RECHECK_SECONDS)
                while event is not None:  # read what is pending, then one settling
                    event = await watcher.next(timeout=0)
                self.settle()
        except Closed:
            return
        finally:
            watcher.close()
