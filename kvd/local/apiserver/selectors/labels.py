"""Label selectors as values: requirements, their validation, and ``metav1.LabelSelector``.

This is the half of apimachinery's ``labels`` package that does not read text: what a requirement
means, how ``labels.NewRequirement`` validates one, and how ``LabelSelectorAsSelector`` turns an
object's ``matchLabels``/``matchExpressions`` into a selector. The text grammar of
``?labelSelector=`` lives in ``label_parser`` and builds on these; field selectors reuse the error
and operator types. Clients show the server's error text to users, so validation keeps
apimachinery's exact wording, Go formatting quirks included.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final


class SelectorError(ValueError):
    """A selector that does not parse or validate; the message is apimachinery's wording."""


class Operator(enum.StrEnum):
    """Label requirement operators, valued as apimachinery's ``selection.Operator`` strings."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER_THAN = "gt"
    LESS_THAN = "lt"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


# --- validation (k8s.io/apimachinery/pkg/util/validation), with its exact messages -------------

_NAME_RE: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_VALUE_FMT: Final = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_DNS1123_SUBDOMAIN_FMT: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_MAX_NAME_BYTES: Final = 63
_MAX_SUBDOMAIN_BYTES: Final = 253


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Go's validation.RegexError, whose "',  or '" double space clients have seen for years.
    shown = "".join((" or " if i else "") + f"'{example}', " for i, example in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _byte_len(text: str) -> int:
    # Go measures strings in bytes; a non-ASCII name is invalid anyway but its length still counts.
    return len(text.encode("utf-8", "surrogatepass"))


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid label key (``[prefix/]name``); empty when it is valid.

    The API server uses these for ``metadata.labels`` too, so the wording is apimachinery's.
    """
    errors: list[str] = []
    prefix, slash, name = key.partition("/")
    if not slash:
        name = key
    elif "/" in name:
        return [
            "a valid label key "
            + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    elif not prefix:
        errors.append("prefix part must be non-empty")
    else:
        if _byte_len(prefix) > _MAX_SUBDOMAIN_BYTES:
            errors.append(f"prefix part must be no more than {_MAX_SUBDOMAIN_BYTES} characters")
        if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            errors.append(
                "prefix part "
                + _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
            )
    if not name:
        errors.append("name part must be non-empty")
    elif _byte_len(name) > _MAX_NAME_BYTES:
        errors.append(f"name part must be no more than {_MAX_NAME_BYTES} characters")
    if not _NAME_RE.fullmatch(name):
        errors.append(
            "name part " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value (it may be empty); empty when it is valid."""
    errors: list[str] = []
    if _byte_len(value) > _MAX_NAME_BYTES:
        errors.append(f"must be no more than {_MAX_NAME_BYTES} characters")
    if value and not _NAME_RE.fullmatch(value):
        errors.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def go_quote(text: str) -> str:
    """Go's ``%q`` for the plain strings selectors carry (``json.dumps`` escapes non-ASCII
    differently)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def _go_string_slice(values: Sequence[str] | None) -> str:
    # Go's %#v of a []string, which field.Invalid prints for a bad value list.
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def field_invalid(path: str, bad_value: str, detail: str) -> str:
    """``field.Invalid(...).Error()``; a nil ``*field.Path`` prints as ``<nil>``."""
    return f"{path}: Invalid value: {bad_value}: {detail}"


def _aggregate(errors: list[str]) -> str:
    # utilerrors.Aggregate: one error alone, several in brackets.
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


_INT64: Final = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    # strconv.ParseInt(text, 10, 64): no underscores, spaces or overflow, which int() would allow.
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


# --- label requirements and selectors ----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <op> values`` term; a selector is the AND of its requirements."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies this term; a missing key satisfies only ``!=``, ``notin``
        and ``!`` (as in Kubernetes, ``env!=prod`` selects objects without an ``env`` label)."""
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
                have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
                if have is None or want is None:
                    return False
                return have > want if self.operator is Operator.GREATER_THAN else have < want
        return False  # pragma: no cover - the match above is exhaustive

    def __str__(self) -> str:
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


def new_requirement(
    key: str, operator: Operator, *, values: Sequence[str] | None = None, path: str = ""
) -> Requirement:
    """Validate and build a requirement as ``labels.NewRequirement`` does.

    ``path`` prefixes field paths in messages (``key``, ``values[0][app]``); apimachinery's parser
    passes none, so its messages start at ``key``/``values``. ``values=None`` stands for Go's nil
    slice, which only shows in the wording of an error.
    """
    errors: list[str] = []
    prefix = f"{path}." if path else ""
    if key_errors := label_key_errors(key):
        errors.append(field_invalid(prefix + "key", go_quote(key), "; ".join(key_errors)))
    vals = list(values or ())
    values_path = prefix + "values"
    shown = _go_string_slice(None if values is None else vals)
    if operator in (Operator.IN, Operator.NOT_IN):
        if not vals:
            errors.append(
                field_invalid(
                    values_path, shown, "for 'in', 'notin' operators, values set can't be empty"
                )
            )
    elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(vals) != 1:
            errors.append(
                field_invalid(
                    values_path, shown, "exact-match compatibility requires one single value"
                )
            )
    elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if vals:
            errors.append(
                field_invalid(
                    values_path, shown, "values set must be empty for exists and does not exist"
                )
            )
    else:
        if len(vals) != 1:
            errors.append(
                field_invalid(
                    values_path, shown, "for 'Gt', 'Lt' operators, exactly one value is required"
                )
            )
        errors.extend(
            field_invalid(
                f"{values_path}[{i}]",
                go_quote(v),
                "for 'Gt', 'Lt' operators, the value must be an integer",
            )
            for i, v in enumerate(vals)
            if _parse_int64(v) is None
        )
    for i, value in enumerate(vals):
        if value_errors := label_value_errors(value):
            errors.append(
                field_invalid(
                    f"{values_path}[{i}][{key}]", go_quote(value), "; ".join(value_errors)
                )
            )
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, operator, tuple(vals))


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    """The AND of requirements, sorted by key as apimachinery keeps them.

    No requirements selects everything; ``NOTHING`` (from a nil ``metav1.LabelSelector``) selects
    nothing.
    """

    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected."""
        if self.selects_nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (kube's ``Selector.Empty``)."""
        return not self.requirements and not self.selects_nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING: Final = LabelSelector()
NOTHING: Final = LabelSelector(selects_nothing=True)


def sorted_selector(requirements: Iterable[Requirement]) -> LabelSelector:
    """The selector of ``requirements``, sorted by key as apimachinery keeps them."""
    # sort.Sort(ByKey) is not stable, but requirements with equal keys only differ in order, which
    # matching does not see; Python's stable sort keeps them as written.
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


_EXPRESSION_OPERATORS: Final = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def from_label_selector_object(obj: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (``matchLabels``, ``matchExpressions``) to a selector.

    As ``metav1.LabelSelectorAsSelector``: ``None`` selects nothing, an empty selector selects
    everything. Used for scale subresources' ``status.selector`` and for owner-less matching.
    """
    if obj is None:
        return NOTHING
    if not isinstance(obj, Mapping):
        raise SelectorError(f"a label selector must be an object, not {type(obj).__name__}")
    match_labels = obj.get("matchLabels") or {}
    expressions = obj.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError("matchLabels must be an object and matchExpressions a list")
    requirements: list[Requirement] = []
    for key in sorted(match_labels, key=str):
        value = match_labels[key]
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError(f"matchLabels must map strings to strings, not {key!r}: {value!r}")
        requirements.append(new_requirement(key, Operator.EQUALS, values=[value]))
    for expression in expressions:
        if not isinstance(expression, Mapping):
            raise SelectorError(f"a matchExpressions entry must be an object, not {expression!r}")
        raw_operator = expression.get("operator")
        operator = (
            _EXPRESSION_OPERATORS.get(raw_operator) if isinstance(raw_operator, str) else None
        )
        if operator is None:
            raise SelectorError(
                f"{go_quote(str(raw_operator or ''))} is not a valid label selector operator"
            )
        key, values = expression.get("key", ""), expression.get("values")
        if not isinstance(key, str) or not (
            values is None or (isinstance(values, list) and all(isinstance(v, str) for v in values))
        ):
            raise SelectorError(f"a matchExpressions entry needs a string key and values: {key!r}")
        requirements.append(new_requirement(key, operator, values=values or None))
    if not requirements:
        return EVERYTHING
    return sorted_selector(requirements)
