"""Label requirements and what they select: one meaning wherever kvd selects by labels.

kvd selects objects by their labels in three places: list and watch (`?labelSelector=`, in the
local API server), a replica set's `selector` over its template (kvd.api validation), and a
pod's node selector and required node affinity (the local node's scheduler). Kubernetes gives
all of them the meaning of apimachinery's `labels.Requirement.Matches`, so they share it here:
a `Requirement` is a key, an operator and values; a `Selector` is the AND of requirements, or
`NOTHING`, which a nil `metav1.LabelSelector` selects (an empty one selects everything).

The edges, as Kubernetes has them: a missing key satisfies only `!=`, `notin` and `!`
(`DoesNotExist`); `gt`/`lt` compare int64s and are false for a missing key or a label that is
not one; a requirement whose values do not suit its operator (`Exists` with values, `In`
without, `Gt` with two or with a non-integer) is refused where it is built (`requirement`,
`value_problems`), as `labels.NewRequirement` refuses it, so it never silently matches.

Parsing the `?labelSelector=` text and apimachinery's wording for invalid keys and values belong
to the API server (`kvd.local.apiserver.selectors`); it builds these requirements.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final


class Operator(enum.StrEnum):
    """Requirement operators, valued as apimachinery's `selection.Operator` strings."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER_THAN = "gt"
    LESS_THAN = "lt"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


# The operators' words in API objects: metav1.LabelSelector's matchExpressions allow four,
# core/v1 NodeSelectorRequirement (node affinity) two more.
SELECTOR_OPERATORS: Final = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}
NODE_SELECTOR_OPERATORS: Final = {
    **SELECTOR_OPERATORS,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}

_INT64: Final = re.compile(r"[+-]?[0-9]+")


def int64(text: str) -> int | None:
    """`text` as Go's `strconv.ParseInt(text, 10, 64)` reads it, or None: no spaces, no
    underscores and no overflow, all of which Python's `int()` would allow."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


class InvalidRequirement(ValueError):
    """A requirement Kubernetes refuses to build; the message says why."""


def value_problems(operator: Operator, values: Sequence[str]) -> list[tuple[int | None, str]]:
    """Why `values` do not suit `operator`, in apimachinery's words: (index of the value at
    fault, or None for the whole list; detail). Empty when they do."""
    if operator in (Operator.IN, Operator.NOT_IN):
        return [] if values else [(None, "for 'in', 'notin' operators, values set can't be empty")]
    if operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(values) == 1:
            return []
        return [(None, "exact-match compatibility requires one single value")]
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if not values:
            return []
        return [(None, "values set must be empty for exists and does not exist")]
    problems: list[tuple[int | None, str]] = []
    if len(values) != 1:
        problems.append((None, "for 'Gt', 'Lt' operators, exactly one value is required"))
    problems.extend(
        (i, "for 'Gt', 'Lt' operators, the value must be an integer")
        for i, value in enumerate(values)
        if int64(value) is None
    )
    return problems


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One `key <op> values` term; build checked ones with `requirement`."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this term (apimachinery's `Requirement.Matches`)."""
        present = self.key in labels
        match self.operator:
            case Operator.IN | Operator.EQUALS | Operator.DOUBLE_EQUALS:
                return present and labels[self.key] in self.values
            case Operator.NOT_IN | Operator.NOT_EQUALS:
                return not present or labels[self.key] not in self.values
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present
            case Operator.GREATER_THAN | Operator.LESS_THAN:
                if not present or len(self.values) != 1:
                    return False
                have, want = int64(labels[self.key]), int64(self.values[0])
                if have is None or want is None:
                    return False
                return have > want if self.operator is Operator.GREATER_THAN else have < want
        return False  # pragma: no cover - the match above is exhaustive

    def __str__(self) -> str:
        """apimachinery's canonical text of the term (`Requirement.String`)."""
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if self.operator in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {self.operator.value} ({values})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(
            self.operator, self.operator.value
        )
        return f"{self.key}{symbol}{values}"


def requirement(
    key: str,
    operator: str,
    values: Iterable[str] | None = None,
    *,
    operators: Mapping[str, Operator] = SELECTOR_OPERATORS,
) -> Requirement:
    """A checked requirement from an API object's expression (`key`, `operator` as the API
    spells it, `values`); `operators` says which words the field allows. InvalidRequirement
    for an operator it does not allow or values that do not suit it."""
    op = operators.get(operator)
    if op is None:
        raise InvalidRequirement(f'"{operator}" is not a valid operator')
    vals = tuple(values or ())
    problems = value_problems(op, vals)
    if problems:
        raise InvalidRequirement("; ".join(detail for _, detail in problems))
    return Requirement(key, op, vals)


def equals(key: str, value: str) -> Requirement:
    """`key=value`: a matchLabels or nodeSelector entry."""
    return Requirement(key, Operator.EQUALS, (value,))


@dataclasses.dataclass(frozen=True, slots=True)
class Selector:
    """The AND of requirements, sorted by key as apimachinery keeps them; `NOTHING` selects
    nothing, no requirements select everything."""

    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with `labels` is selected."""
        if self.selects_nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (kube's `Selector.Empty`)."""
        return not self.requirements and not self.selects_nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING: Final = Selector()
NOTHING: Final = Selector(selects_nothing=True)


def selector(requirements: Iterable[Requirement]) -> Selector:
    """The selector of `requirements`, sorted by key as apimachinery keeps them."""
    # sort.Sort(ByKey) is not stable, but requirements with equal keys only differ in order,
    # which matching does not see; Python's stable sort keeps them as written.
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def label_selector(
    match_labels: Mapping[str, str],
    match_expressions: Iterable[tuple[str, str, Iterable[str] | None]],
) -> Selector:
    """A metav1.LabelSelector that is present (`metav1.LabelSelectorAsSelector`): its
    matchLabels and its matchExpressions as (key, operator, values); no requirements at all
    select everything. (A nil selector is `NOTHING`.) InvalidRequirement for a bad expression."""
    requirements = [equals(key, value) for key, value in match_labels.items()]
    requirements += [requirement(key, op, values) for key, op, values in match_expressions]
    return selector(requirements) if requirements else EVERYTHING
