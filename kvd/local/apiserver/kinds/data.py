"""ConfigMap and Secret rules, as pkg/apis/core/validation has them.

Keys are config keys (alphanumerics, '-', '_', '.'; not '.', '..' or starting with '..'; at most
253 characters), a ConfigMap's `data` and `binaryData` share no key, and the values together
hold at most 1 MiB (`[]: Too long` for a ConfigMap, the whole object; `data: Too long` for a
Secret). A Secret's `stringData` is merged into `data` before any of this, as kube's conversion
does, so only `data` is stored; typed Secrets must carry their type's keys.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kvd.local.apiserver.kinds import fields

MAX_SIZE = 1024 * 1024  # core.MaxSecretSize, for ConfigMaps too
_TYPE_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _decoded_len(text: Any) -> int:
    try:
        return len(base64.b64decode(str(text)))
    except (binascii.Error, ValueError):
        return len(str(text))


def config_map(obj: dict[str, Any], errs: fields.Errors) -> None:
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    total = 0
    for key, value in data.items():
        errs.invalid_all(f"data[{key}]", key, fields.config_map_key(key))
        if key in binary:
            errs.invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
        total += len(str(value).encode())
    for key, value in binary.items():
        errs.invalid_all(f"binaryData[{key}]", key, fields.config_map_key(key))
        total += _decoded_len(value)
    if total > MAX_SIZE:
        errs.too_long("[]", MAX_SIZE)  # field.NewPath(""): the whole object


def merge_string_data(obj: dict[str, Any]) -> None:
    """kube's conversion: every stringData entry replaces the data entry of its key."""
    strings = obj.pop("stringData", None)
    if strings:
        data = obj.setdefault("data", {})
        for key, value in strings.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def secret(obj: dict[str, Any], errs: fields.Errors) -> None:
    data = obj.get("data") or {}
    total = 0
    for key, value in data.items():
        errs.invalid_all(f"data[{key}]", key, fields.config_map_key(key))
        total += _decoded_len(value)
    if total > MAX_SIZE:
        errs.too_long("data", MAX_SIZE)
    kind = obj.get("type") or ""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if kind == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        if not annotations.get(key):
            errs.required(f"metadata.annotations[{key}]")
    elif kind == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        errs.required("data[username]")
        errs.required("data[password]")
    for key in _TYPE_KEYS.get(kind, ()):
        if key not in data:
            errs.required(f"data[{key}]")
