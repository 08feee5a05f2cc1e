"""ObjectMeta rules every kind shares: names, generated names, server-set fields, timestamps."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from kvd.local.apiserver import selectors
from kvd.local.apiserver.errors import Cause

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# apimachinery's generated-name alphabet: no vowels (no words) and no look-alikes
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SERVER_FIELDS = ("uid", "creationTimestamp", "resourceVersion", "generation", "selfLink")
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    # kube trims the prefix so the result stays within 63 characters
    return prefix[: 63 - 5] + "".join(random.choice(_ALPHABET) for _ in range(5))


def name_causes(
    name: object, *, label: bool, path: str = "metadata.name", path_segment: bool = False
) -> list[Cause]:
    """Why `name` is not a valid object name: a DNS-1123 label for namespaces, a path segment
    (anything but '.', '..', '/' and '%') for RBAC's kinds, else a subdomain."""
    if not isinstance(name, str) or not name:
        return [
            Cause("FieldValueRequired", "Required value: name or generateName is required", path)
        ]
    if path_segment:
        return [
            Cause("FieldValueInvalid", f'Invalid value: "{name}": {message}', path)
            for message in path_segment_problems(name)
        ]
    limit = 63 if label else 253
    pattern = DNS1123_LABEL if label else DNS1123_SUBDOMAIN
    causes = []
    if len(name) > limit:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be no more than {limit} characters',
                path,
            )
        )
    if not pattern.match(name):
        message = _LABEL_MESSAGE if label else _SUBDOMAIN_MESSAGE
        causes.append(Cause("FieldValueInvalid", f'Invalid value: "{name}": {message}', path))
    return causes


def path_segment_problems(name: str) -> list[str]:
    """apimachinery's IsValidPathSegmentName: the name must survive as one URL path segment."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def map_causes(meta: dict[str, Any]) -> list[Cause]:
    """Labels and annotations must be maps of strings with valid keys (and label values)."""
    causes = []
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    "must be a map of string to string",
                    f"metadata.{field}",
                )
            )
            continue
        for key, val in value.items():
            for problem in selectors.label_key_errors(key):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{key}": {problem}',
                        f"metadata.{field}",
                    )
                )
            if field == "labels":
                for problem in selectors.label_value_errors(val):
                    causes.append(
                        Cause(
                            "FieldValueInvalid",
                            f'Invalid value: "{val}": {problem}',
                            "metadata.labels",
                        )
                    )
    return causes
