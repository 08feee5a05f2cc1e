"""apimachinery's field errors and the string checks Kubernetes' validation is built from.

`Errors` collects causes as `field.ErrorList` does: the message is `field.Error.ErrorBody()`
(`Invalid value: "x": <detail>`, `Required value`, `Unsupported value: "x": supported values:
...`), the field a `field.Path` string (`spec.containers[0].name`, `data[key]`). The checks
return apimachinery's own explanations (`IsDNS1123Label`, `IsConfigMapKey`, `IsValidPortName`,
...), word for word, since users compare them with what a cluster says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.schema.values import go_quote

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
NOT_FOUND = "FieldValueNotFound"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Errors:
    """A field.ErrorList being built."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def required(self, path: str, detail: str = "") -> None:
        self._add(REQUIRED, path, "Required value", detail)

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self._add(INVALID, path, f"Invalid value: {_shown(value)}", detail)

    def invalid_all(self, path: str, value: Any, details: Iterable[str]) -> None:
        for detail in details:
            self.invalid(path, value, detail)

    def not_supported(self, path: str, value: Any, supported: Iterable[str]) -> None:
        allowed = ", ".join(go_quote(s) for s in supported)
        detail = f"supported values: {allowed}" if allowed else ""
        self._add(NOT_SUPPORTED, path, f"Unsupported value: {_shown(value)}", detail)

    def duplicate(self, path: str, value: Any) -> None:
        self._add(DUPLICATE, path, f"Duplicate value: {_shown(value)}", "")

    def not_found(self, path: str, value: Any) -> None:
        self._add(NOT_FOUND, path, f"Not found: {_shown(value)}", "")

    def forbidden(self, path: str, detail: str) -> None:
        self._add(FORBIDDEN, path, "Forbidden", detail)

    def too_long(self, path: str, limit: int) -> None:
        self._add(TOO_LONG, path, "Too long", f"must have at most {limit} bytes")

    def _add(self, reason: str, path: str, body: str, detail: str) -> None:
        message = f"{body}: {detail}" if detail else body
        cause = Cause(reason, message, path)
        if cause not in self.causes:  # ToAggregate drops repeated messages
            self.causes.append(cause)


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len(limit: int) -> str:
    return f"must be no more than {limit} characters"


_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL = re.compile(_LABEL_FMT)
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_SUBDOMAIN = re.compile(_SUBDOMAIN_FMT)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT)


def dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not _LABEL.fullmatch(value):
        if _SUBDOMAIN.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_LABEL_MSG, _LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(_max_len(253))
    if not _SUBDOMAIN.fullmatch(value):
        errs.append(_regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(_max_len(253))
    if not _CONFIG_KEY.fullmatch(value):
        errs.append(
            _regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY_FMT,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    return errs + _chdir_prefix(value)


def env_var_name(value: str) -> list[str]:
    """IsRelaxedEnvVarName: RelaxedEnvironmentVariableValidation is on by default in 1.37."""
    if not value:
        return ["environment variable name must be non-empty"]
    if any(not (" " <= ch <= "~") or ch == "=" for ch in value):
        return [
            "a valid environment variable name must consist only of printable ASCII characters "
            "other than '='"
        ]
    return []


def port_name(value: str) -> list[str]:
    errs = []
    if len(value) > 15:
        errs.append(_max_len(15))
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else ["must be between 1 and 65535, inclusive"]
