"""APIService defaults and validation, as kube-aggregator's registry applies them.

Defaults: `spec.service.port` is 443. Validation (kube's `ValidateAPIService`): the name must
be `<spec.version>.<spec.group>`; only `v1` may have an empty group; the group is a DNS
subdomain and the version a DNS-1035 label; `groupPriorityMinimum` is in 1..20000 and
`versionPriority` in 1..1000; a local APIService (no `spec.service`) has neither `caBundle` nor
`insecureSkipTLSVerify`; a service names its namespace and name, on a valid port, and does not
both skip TLS verification and give a CA bundle. Every failing field is reported in one 422.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from kvd.local.apiserver import errors
from kvd.local.apiserver.kinds import fields
from kvd.local.apiserver.registry import ResourceDef

GROUP = "apiregistration.k8s.io"
DEFAULT_PORT = 443
_DNS1035 = re.compile("[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


class APIServiceValidation:
    """The admission chain's link for APIServices; other kinds pass untouched."""

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> list[str]:
        if _applies(resource):
            default(obj)
            _check(obj)
        return []

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> list[str]:
        if _applies(resource):
            default(new)
            _check(new)
        return []


def _applies(resource: ResourceDef) -> bool:
    return resource.group == GROUP and resource.kind == "APIService"


def default(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    service = spec.get("service") if isinstance(spec, dict) else None
    if isinstance(service, dict) and service.get("port") in (None, 0):
        service["port"] = DEFAULT_PORT


def _check(obj: dict[str, Any]) -> None:
    causes = validate(obj)
    if causes:
        name = str((obj.get("metadata") or {}).get("name", ""))
        raise errors.invalid(GROUP, "APIService", name, causes)


def validate(obj: dict[str, Any]) -> list[errors.Cause]:
    """kube's causes for an APIService it would refuse; empty when it passes."""
    errs = fields.Errors()
    raw_spec = obj.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    group = str(spec.get("group") or "")
    version = str(spec.get("version") or "")
    name = str((obj.get("metadata") or {}).get("name", ""))
    required = f"{version}.{group}"
    if name:
        segment = _path_segment(name)
        if segment:
            errs.invalid_all("metadata.name", name, segment)
        elif name != required:
            detail = f'must be `spec.version+"."+spec.group`: "{required}"'
            errs.invalid("metadata.name", name, detail)
    if not group and version != "v1":
        errs.required("spec.group", "only v1 may have an empty group and it better be legacy kube")
    if group:
        errs.invalid_all("spec.group", group, fields.dns1123_subdomain(group))
    if len(version) > 63:
        errs.invalid("spec.version", version, "must be no more than 63 characters")
    if not _DNS1035.fullmatch(version):
        errs.invalid("spec.version", version, _DNS1035_MSG)
    group_priority = _integer(spec.get("groupPriorityMinimum"))
    if not 0 < group_priority <= 20000:
        detail = "must be positive and less than 20000"
        errs.invalid("spec.groupPriorityMinimum", group_priority, detail)
    version_priority = _integer(spec.get("versionPriority"))
    if not 0 < version_priority <= 1000:
        errs.invalid(
            "spec.versionPriority", version_priority, "must be positive and less than 1000"
        )
    _check_service(spec, errs)
    return errs.causes


def _check_service(spec: dict[str, Any], errs: fields.Errors) -> None:
    ca_bundle = str(spec.get("caBundle") or "")
    insecure = spec.get("insecureSkipTLSVerify") is True
    service = spec.get("service")
    if not isinstance(service, dict):
        if ca_bundle:
            size = f"{len(_bundle_bytes(ca_bundle))} bytes"
            errs.invalid("spec.caBundle", size, "local APIServices may not have a caBundle")
        if insecure:
            detail = "local APIServices may not have insecureSkipTLSVerify"
            errs.invalid("spec.insecureSkipTLSVerify", True, detail)
        return
    if not service.get("namespace"):
        errs.required("spec.service.namespace")
    if not service.get("name"):
        errs.required("spec.service.name")
    port = _integer(service.get("port"))
    bad_port = fields.port_number(port)
    if bad_port:
        errs.invalid("spec.service.port", port, "port is not valid: " + ", ".join(bad_port))
    if insecure and ca_bundle:
        errs.invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present")


def _path_segment(name: str) -> list[str]:
    """IsValidPathSegmentName: a name kube could not put in a URL path."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _integer(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bundle_bytes(value: str) -> bytes:
    """caBundle is []byte in Go: base64 in JSON (the decoder has checked it)."""
    try:
        return base64.b64decode(value)
    except (ValueError, binascii.Error):
        return value.encode()
