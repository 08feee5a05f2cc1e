"""Label selectors as the API server reads them: validation with apimachinery's words.

What a requirement means (matching, `Operator`, `Requirement`, the selector as their AND) is
kvd's shared `kvd.api.labels`, which the scheduler and kvd.api's validation use too; the API
server adds what clients read from it: how ``labels.NewRequirement`` validates a key, values and
operator, with apimachinery's exact messages (Go formatting quirks included), and how
``LabelSelectorAsSelector`` turns an object's ``matchLabels``/``matchExpressions`` into a
selector. The text grammar of ``?labelSelector=`` lives in ``label_parser`` and builds on these;
field selectors reuse the error and operator types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from kvd.api.labels import (
    EVERYTHING,
    NOTHING,
    SELECTOR_OPERATORS,
    Operator,
    Requirement,
    selector,
    value_problems,
)
from kvd.api.labels import Selector as LabelSelector

__all__ = [
    "EVERYTHING",
    "NOTHING",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "field_invalid",
    "from_label_selector_object",
    "go_quote",
    "label_key_errors",
    "label_value_errors",
    "new_requirement",
]


class SelectorError(ValueError):
    """A selector that does not parse or validate; the message is apimachinery's wording."""


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


# --- label requirements and selectors ----------------------------------------------------------


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
    for index, detail in value_problems(operator, vals):
        if index is None:
            errors.append(field_invalid(values_path, shown, detail))
        else:
            errors.append(field_invalid(f"{values_path}[{index}]", go_quote(vals[index]), detail))
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
        operator = SELECTOR_OPERATORS.get(raw_operator) if isinstance(raw_operator, str) else None
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
    return selector(requirements)
