"""RBAC's rule resolver: the stored roles and bindings, indexed in memory by subject.

kube's RBAC authorizer asks, for a user and a namespace, which ClusterRoleBindings and (in that
namespace) RoleBindings name the user, their user name, one of their groups, or (for
`system:serviceaccount:NS:NAME`) their service account, and collects the rules of the roles
they refer to. A RoleBinding may refer to a ClusterRole: its rules then hold in the binding's
namespace only. Here the bindings are indexed by subject, so resolving a user is a few dict
lookups, and the resolved `policy.Rules` are kept per (user, groups, namespace) until any
role or binding changes: the request path costs one lookup.

The index follows the store, not a copy of it: it lists the four kinds once, then reads their
events. Every read first applies the events written since it last looked (`catch_up`, a
cursor per kind into the store's history, no query, nothing to do when nothing was written),
so a request sees every role and binding written before it: read-your-writes, which
`kubectl create rolebinding` followed by a request as that user needs, with no background
task to wait for. Requests that never consult RBAC (system:masters') cost it nothing. If it
falls out of the store's history meanwhile, it lists again.

A binding to a role that does not exist grants nothing and makes the rules incomplete, with
kube's error (`clusterrole.rbac.authorization.k8s.io "x" not found`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kvd.local.apiserver.auth import User
from kvd.local.apiserver.policy import NonResourceRule, ResourceRule, Rules
from kvd.local.apiserver.rbac import rules as rbacrules
from kvd.local.apiserver.rbac import subjects
from kvd.local.apiserver.rbac.rules import PolicyRule
from kvd.local.apiserver.rbac.subjects import SubjectKey
from kvd.local.apiserver.registry import RBAC_GROUP
from kvd.local.apiserver.schema.values import go_quote
from kvd.local.apiserver.store import Closed, Event, Gone, ResourceKey, Store, Watcher

ROLES = ResourceKey(RBAC_GROUP, "roles")
CLUSTER_ROLES = ResourceKey(RBAC_GROUP, "clusterroles")
ROLE_BINDINGS = ResourceKey(RBAC_GROUP, "rolebindings")
CLUSTER_ROLE_BINDINGS = ResourceKey(RBAC_GROUP, "clusterrolebindings")
KEYS = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Binding:
    name: str
    namespace: str  # "" for a ClusterRoleBinding
    role_kind: str
    role_name: str
    subjects: tuple[dict[str, Any], ...]
    keys: tuple[SubjectKey | None, ...]  # one per subject

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Binding:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        ref = obj.get("roleRef") or {}
        listed = tuple(s for s in obj.get("subjects") or () if isinstance(s, dict))
        return cls(
            name=str(meta.get("name", "")),
            namespace=namespace,
            role_kind=str(ref.get("kind", "")),
            role_name=str(ref.get("name", "")),
            subjects=listed,
            keys=tuple(subjects.subject_key(s, namespace) for s in listed),
        )

    def describe(self, user_keys: set[SubjectKey]) -> str:
        """kube's name for what a rule came from: the binding, its role and the first of its
        subjects that is this user."""
        index = next(i for i, key in enumerate(self.keys) if key in user_keys)
        who = subjects.describe(self.subjects[index], self.namespace)
        role = f"{self.role_kind} {go_quote(self.role_name)}"
        if self.namespace:
            return f"RoleBinding {go_quote(f'{self.name}/{self.namespace}')} of {role} to {who}"
        return f"ClusterRoleBinding {go_quote(self.name)} of {role} to {who}"


class RBACIndex:
    """A `policy.RuleResolver` over the stored RBAC objects; see the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._roles: dict[tuple[str, str], tuple[PolicyRule, ...]] = {}
        self._bindings: dict[tuple[str, str], Binding] = {}
        # binding namespace ("" for cluster bindings) → subject → binding names
        self._by_subject: dict[str, dict[SubjectKey, set[str]]] = {}
        self._cache: dict[tuple[str, tuple[str, ...], str], Rules] = {}
        self._watchers: list[Watcher] = []
        self._seen = 0  # the store's revision when the index last caught up
        self._load()

    # --- following the store -------------------------------------------------------------------

    def _load(self) -> None:
        for watcher in self._watchers:
            watcher.close()
        self._roles.clear()
        self._bindings.clear()
        self._by_subject.clear()
        self._cache.clear()
        since = self._seen = self.store.revision
        for key in KEYS:
            items, _ = self.store.list(key, None)
            for obj in items:
                self._put(key, obj)
        self._watchers = [self.store.watch(key, None, since) for key in KEYS]

    def catch_up(self) -> None:
        """Apply what was written to roles and bindings since the last call (every read does
        this first, so it never waits for a background task and costs nothing when the
        index is not consulted, as for system:masters)."""
        revision = self.store.revision
        if revision == self._seen:
            return  # nothing was written at all
        changed = False
        try:
            for watcher in self._watchers:
                while (event := watcher.poll()) is not None:
                    changed = True
                    self._apply(event)
            self._seen = revision
        except Gone:
            self._load()
        except Closed:
            pass  # the server is stopping
        finally:
            if changed:
                self._cache.clear()

    def close(self) -> None:
        for watcher in self._watchers:
            watcher.close()

    def _apply(self, event: Event) -> None:
        if event.type == "DELETED":
            self._drop(event.key, event.namespace, event.name)
        else:
            self._put(event.key, event.object)

    def _put(self, key: ResourceKey, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ident = (str(meta.get("namespace") or ""), str(meta.get("name", "")))
        if key in (ROLES, CLUSTER_ROLES):
            self._roles[self._role_key(key, *ident)] = rbacrules.parse_all(obj.get("rules"))
            return
        self._drop(key, *ident)
        binding = Binding.parse(obj)
        self._bindings[ident] = binding
        by_subject = self._by_subject.setdefault(binding.namespace, {})
        for subject in binding.keys:
            if subject is not None:
                by_subject.setdefault(subject, set()).add(binding.name)

    def _drop(self, key: ResourceKey, namespace: str, name: str) -> None:
        if key in (ROLES, CLUSTER_ROLES):
            self._roles.pop(self._role_key(key, namespace, name), None)
            return
        binding = self._bindings.pop((namespace, name), None)
        if binding is None:
            return
        by_subject = self._by_subject.get(namespace, {})
        for subject in binding.keys:
            if subject is None or subject not in by_subject:
                continue
            by_subject[subject].discard(name)
            if not by_subject[subject]:
                del by_subject[subject]

    @staticmethod
    def _role_key(key: ResourceKey, namespace: str, name: str) -> tuple[str, str]:
        """Roles by "namespace/name", ClusterRoles by name (no name has a "/")."""
        return ("Role", f"{namespace}/{name}") if key == ROLES else ("ClusterRole", name)

    # --- resolving -------------------------------------------------------------------------------

    def role_rules(self, kind: str, name: str, namespace: str) -> tuple[PolicyRule, ...] | str:
        """The rules of the role a binding in `namespace` refers to, or kube's error."""
        self.catch_up()
        if kind == "ClusterRole":
            found = self._roles.get(("ClusterRole", name))
            resource = "clusterrole"
        elif kind == "Role":
            found = self._roles.get(("Role", f"{namespace}/{name}")) if namespace else None
            resource = "role"
        else:
            return f"unsupported role reference kind: {go_quote(kind)}"
        if found is None:
            return f"{resource}.{RBAC_GROUP} {go_quote(name)} not found"
        return found

    def rules_for(self, user: User, namespace: str) -> Rules:
        self.catch_up()
        key = (user.name, user.groups, namespace)
        rules = self._cache.get(key)
        if rules is None:
            rules = self._resolve(user, namespace)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = rules
        return rules

    def _resolve(self, user: User, namespace: str) -> Rules:
        keys = subjects.user_keys(user.name, user.groups)
        wanted = set(keys)
        resource: list[ResourceRule] = []
        non_resource: list[NonResourceRule] = []
        failures: list[str] = []
        # cluster bindings first, then the namespace's, each by name, as kube visits them
        for where in ("", namespace) if namespace else ("",):
            for binding in self._bindings_of(where, keys):
                found = self.role_rules(binding.role_kind, binding.role_name, where)
                if isinstance(found, str):
                    failures.append(found)
                    continue
                more, more_urls = rbacrules.compile_rules(found, binding.describe(wanted))
                resource += more
                non_resource += more_urls
        return Rules(tuple(resource), tuple(non_resource), errors=tuple(failures))

    def _bindings_of(self, namespace: str, keys: Iterable[SubjectKey]) -> list[Binding]:
        by_subject = self._by_subject.get(namespace)
        if not by_subject:
            return []
        names = sorted({name for key in keys for name in by_subject.get(key, ())})
        return [self._bindings[(namespace, name)] for name in names]
