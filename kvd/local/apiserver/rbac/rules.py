"""PolicyRules: read from stored roles, compared, and checked for escalation.

A stored rule is a JSON object (`verbs`, `apiGroups`, `resources`, `resourceNames`,
`nonResourceURLs`). The authorizer matches `policy.ResourceRule`s and `NonResourceRule`s, so
`compile` turns each stored rule into those, tagged with the binding that grants it.

Escalation prevention is kube's `Covers`: break the rules being granted into one verb, group,
resource (and name) each, and require every piece to be covered by a rule the user holds
(`*` covers anything, `*/scale` covers `deployments/scale`, `/api*` covers `/api/v1`, a rule
without names covers any name). What is missing is reported as kube's
`ConfirmNoEscalation` reports it: compacted (pieces differing only in verb merged) and
printed as `{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}`, one per line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kvd.local.apiserver.policy import NonResourceRule, ResourceRule
from kvd.local.apiserver.schema.values import go_quote


@dataclass(frozen=True)
class PolicyRule:
    """A stored rule, as tuples (hashable, so rules compare and deduplicate)."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> PolicyRule:
        raw = raw if isinstance(raw, dict) else {}

        def strings(key: str) -> tuple[str, ...]:
            values = raw.get(key)
            return tuple(str(v) for v in values) if isinstance(values, list) else ()

        return cls(
            verbs=strings("verbs"),
            api_groups=strings("apiGroups"),
            resources=strings("resources"),
            resource_names=strings("resourceNames"),
            non_resource_urls=strings("nonResourceURLs"),
        )

    def json(self) -> dict[str, Any]:
        """The rule as stored: the fields it has, in the order kube's encoder writes them."""
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        for key, values in (
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        ):
            if values:
                out[key] = list(values)
        return out

    def compact_string(self) -> str:
        """kube's `CompactString`, as escalation errors print a missing rule."""
        parts = [
            f"{name}:[{' '.join(go_quote(v) for v in values)}]"
            for name, values in (
                ("APIGroups", self.api_groups),
                ("Resources", self.resources),
                ("NonResourceURLs", self.non_resource_urls),
                ("ResourceNames", self.resource_names),
                ("Verbs", self.verbs),
            )
            if values
        ]
        return "{" + ", ".join(parts) + "}"


def parse_all(raw: Any) -> tuple[PolicyRule, ...]:
    return tuple(PolicyRule.parse(r) for r in raw) if isinstance(raw, list) else ()


def compile_rules(
    rules: Iterable[PolicyRule], source: str
) -> tuple[list[ResourceRule], list[NonResourceRule]]:
    """The matcher's rules for stored ones, tagged with `source` (which binding grants them)."""
    resource: list[ResourceRule] = []
    non_resource: list[NonResourceRule] = []
    for r in rules:
        if r.resources:
            resource.append(
                ResourceRule(r.verbs, r.api_groups, r.resources, r.resource_names, source=source)
            )
        if r.non_resource_urls:
            non_resource.append(NonResourceRule(r.verbs, r.non_resource_urls, source=source))
    return resource, non_resource


# --- escalation --------------------------------------------------------------------------------


def breakdown(rule: PolicyRule) -> list[PolicyRule]:
    """One rule per verb, group, resource and name (per verb and URL for URL rules)."""
    pieces = [
        PolicyRule((verb,), (group,), (resource,), (name,) if name else ())
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
        for name in (rule.resource_names or ("",))
    ]
    pieces += [
        PolicyRule((verb,), non_resource_urls=(url,))
        for url in rule.non_resource_urls
        for verb in rule.verbs
    ]
    return pieces


def uncovered(owned: Sequence[PolicyRule], granted: Iterable[PolicyRule]) -> list[PolicyRule]:
    """The pieces of `granted` that no rule in `owned` covers (empty: no escalation)."""
    return [
        piece
        for rule in granted
        for piece in breakdown(rule)
        if not any(_covers(owner, piece) for owner in owned)
    ]


def _covers(owner: PolicyRule, piece: PolicyRule) -> bool:
    return (
        _all_in(owner.verbs, piece.verbs)
        and _all_in(owner.api_groups, piece.api_groups)
        and _resources_cover(owner.resources, piece.resources)
        and all(
            any(_url_covers(url, wanted) for url in owner.non_resource_urls)
            for wanted in piece.non_resource_urls
        )
        and (
            not owner.resource_names
            if not piece.resource_names
            else (
                not owner.resource_names
                or all(n in owner.resource_names for n in piece.resource_names)
            )
        )
    )


def _all_in(owned: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    return "*" in owned or all(w in owned for w in wanted)


def _resources_cover(owned: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if "*" in owned:
        return True
    for resource in wanted:
        if resource in owned:
            continue
        _, slash, sub = resource.partition("/")
        if not slash or f"*/{sub}" not in owned:
            return False
    return True


def _url_covers(owned: str, wanted: str) -> bool:
    return owned == wanted or (owned.endswith("*") and wanted.startswith(owned.rstrip("*")))


def compact(pieces: Iterable[PolicyRule]) -> list[PolicyRule]:
    """kube's `CompactRules`: pieces of one group and resource (and name) merged into one rule
    with all their verbs."""
    merged: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    others: list[PolicyRule] = []
    for p in pieces:
        simple = (
            len(p.api_groups) == 1
            and len(p.resources) == 1
            and len(p.resource_names) <= 1
            and not p.non_resource_urls
        )
        if simple:
            merged.setdefault((p.api_groups[0], p.resources[0], p.resource_names), []).extend(
                p.verbs
            )
        else:
            others.append(p)
    return others + [
        PolicyRule(tuple(verbs), (group,), (resource,), names)
        for (group, resource, names), verbs in merged.items()
    ]


def describe_missing(pieces: Iterable[PolicyRule]) -> str:
    """The missing rules, one per line, sorted, as kube's escalation error lists them."""
    return "\n".join(sorted({p.compact_string() for p in compact(pieces)}))
