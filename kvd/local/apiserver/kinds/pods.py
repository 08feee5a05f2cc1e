"""A Pod's spec checked by the rules of pkg/apis/core/validation that kvd's users run into.

Covered: at least one container; container and volume names (DNS-1123 labels, unique); an image
per container; ports (IANA service names, unique, 1-65535, TCP/UDP/SCTP); environment variable
names and their one source; volume mounts naming a volume, with a unique mount path; resource
names and quantities (not negative, requests within limits); one source per volume; the
enumerations (restartPolicy, dnsPolicy, imagePullPolicy, terminationMessagePolicy); node
selector labels; service account, host and subdomain names.

kube checks these after defaulting the pod. kvd defaults only a container's requests from its
limits (`apiserver.pods`), so another field kube would default (a port's protocol, a
container's imagePullPolicy) is checked only when it is given.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from kvd.local.apiserver import selectors
from kvd.local.apiserver.kinds import fields, quantity

# validateVolumeSource's order: the second source found is the one refused
VOLUME_SOURCES = (
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
)
_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def _list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def pod_spec(spec: dict[str, Any], errs: fields.Errors, at: str = "spec") -> None:
    volumes = _volumes(_list(spec.get("volumes")), errs, f"{at}.volumes")
    containers = _list(spec.get("containers"))
    if not containers:
        errs.required(f"{at}.containers")
    names: set[str] = set()
    for i, c in enumerate(containers):
        path = f"{at}.containers[{i}]"
        _container(c, volumes, errs, path)
        name = c.get("name") or ""
        if name in names:
            errs.duplicate(f"{path}.name", name)
        names.add(name)
    for i, c in enumerate(_list(spec.get("initContainers"))):
        path = f"{at}.initContainers[{i}]"
        _container(c, volumes, errs, path)
        name = c.get("name") or ""
        if name in names:
            errs.duplicate(f"{path}.name", name)
        elif name:
            names.add(name)
    _enum(spec, "restartPolicy", ("Always", "OnFailure", "Never"), errs, at)
    _enum(
        spec, "dnsPolicy", ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"), errs, at
    )
    for key, value in _map(spec.get("nodeSelector")).items():
        problems = selectors.label_key_errors(key) + selectors.label_value_errors(str(value))
        errs.invalid_all(f"{at}.nodeSelector", key, problems)
    account = spec.get("serviceAccountName")
    if account:
        errs.invalid_all(f"{at}.serviceAccountName", account, fields.dns1123_subdomain(account))
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            errs.invalid_all(f"{at}.{key}", spec[key], fields.dns1123_label(spec[key]))


def _enum(
    obj: dict[str, Any], key: str, allowed: tuple[str, ...], errs: fields.Errors, at: str
) -> None:
    value = obj.get(key)
    if value and value not in allowed:
        errs.not_supported(f"{at}.{key}", value, allowed)


def _volumes(volumes: list[dict[str, Any]], errs: fields.Errors, at: str) -> set[str]:
    names: set[str] = set()
    for i, vol in enumerate(volumes):
        path = f"{at}[{i}]"
        before = len(errs.causes)
        name = vol.get("name") or ""
        sources = [s for s in VOLUME_SOURCES if vol.get(s) is not None]
        if not sources:
            errs.required(path, "must specify a volume type")
        for extra in sources[1:]:
            errs.forbidden(f"{path}.{extra}", "may not specify more than 1 volume type")
        if sources:
            _volume_source(sources[0], _map(vol.get(sources[0])), errs, f"{path}.{sources[0]}")
        if not name:
            errs.required(f"{path}.name")
        else:
            errs.invalid_all(f"{path}.name", name, fields.dns1123_label(name))
        if name in names:
            errs.duplicate(f"{path}.name", name)
        if len(errs.causes) == before:
            names.add(name)
    return names


def _volume_source(kind: str, source: dict[str, Any], errs: fields.Errors, at: str) -> None:
    required = {
        "hostPath": "path",
        "persistentVolumeClaim": "claimName",
        "secret": "secretName",
        "configMap": "name",
    }.get(kind)
    if required and not source.get(required):
        errs.required(f"{at}.{required}")


def _container(c: dict[str, Any], volumes: set[str], errs: fields.Errors, at: str) -> None:
    name = c.get("name") or ""
    if not name:
        errs.required(f"{at}.name")
    else:
        errs.invalid_all(f"{at}.name", name, fields.dns1123_label(name))
    if not c.get("image"):
        errs.required(f"{at}.image")
    _enum(c, "terminationMessagePolicy", ("File", "FallbackToLogsOnError"), errs, at)
    _ports(_list(c.get("ports")), errs, f"{at}.ports")
    _env(_list(c.get("env")), errs, f"{at}.env")
    _mounts(_list(c.get("volumeMounts")), volumes, errs, f"{at}.volumeMounts")
    _enum(c, "imagePullPolicy", ("Always", "IfNotPresent", "Never"), errs, at)
    _resources(_map(c.get("resources")), errs, f"{at}.resources")


def _ports(ports: list[dict[str, Any]], errs: fields.Errors, at: str) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"{at}[{i}]"
        name = port.get("name") or ""
        if name:
            problems = fields.port_name(name)
            if problems:
                errs.invalid_all(f"{path}.name", name, problems)
            elif name in names:
                errs.duplicate(f"{path}.name", name)
            names.add(name)
        number = port.get("containerPort") or 0
        if not number:
            errs.required(f"{path}.containerPort")
        else:
            errs.invalid_all(f"{path}.containerPort", number, fields.port_number(number))
        host = port.get("hostPort") or 0
        if host:
            errs.invalid_all(f"{path}.hostPort", host, fields.port_number(host))
        protocol = port.get("protocol")
        if protocol and protocol not in ("SCTP", "TCP", "UDP"):
            errs.not_supported(f"{path}.protocol", protocol, ("SCTP", "TCP", "UDP"))


def _env(env: list[dict[str, Any]], errs: fields.Errors, at: str) -> None:
    for i, var in enumerate(env):
        path = f"{at}[{i}]"
        name = var.get("name") or ""
        if not name:
            errs.required(f"{path}.name")
        else:
            errs.invalid_all(f"{path}.name", name, fields.env_var_name(name))
        source = var.get("valueFrom")
        if source is None:
            continue
        given = [s for s in _ENV_SOURCES if _map(source).get(s) is not None]
        here = f"{path}.valueFrom"
        if not given:
            errs.invalid(
                here,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        elif var.get("value"):
            errs.invalid(here, "", "may not be specified when `value` is not empty")
        elif len(given) > 1:
            errs.invalid(here, "", "may not have more than one field specified at a time")
        for ref in ("configMapKeyRef", "secretKeyRef"):
            selector = _map(_map(source).get(ref))
            if ref in given:
                ref_name = selector.get("name") or ""
                errs.invalid_all(f"{here}.{ref}.name", ref_name, fields.dns1123_subdomain(ref_name))
                key = selector.get("key") or ""
                if not key:
                    errs.required(f"{here}.{ref}.key")
                else:
                    errs.invalid_all(f"{here}.{ref}.key", key, fields.config_map_key(key))


def _mounts(mounts: list[dict[str, Any]], volumes: set[str], errs: fields.Errors, at: str) -> None:
    paths: set[str] = set()
    for i, mount in enumerate(mounts):
        path = f"{at}[{i}]"
        name = mount.get("name") or ""
        if not name:
            errs.required(f"{path}.name")
        if name not in volumes:
            errs.not_found(f"{path}.name", name)
        target = mount.get("mountPath") or ""
        if not target:
            errs.required(f"{path}.mountPath")
        if target in paths:
            errs.invalid(f"{path}.mountPath", target, "must be unique")
        paths.add(target)


def _resource_name(name: str, errs: fields.Errors, at: str) -> None:
    problems = selectors.label_key_errors(name)
    if problems:
        errs.invalid_all(at, name, problems)
        return
    standard = name in _STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-")
    if "/" not in name and not standard:
        errs.invalid(at, name, "must be a standard resource for containers")


def _resources(resources: dict[str, Any], errs: fields.Errors, at: str) -> None:
    parsed: dict[str, dict[str, Fraction]] = {}
    for part in ("limits", "requests"):
        parsed[part] = {}
        for name, value in _map(resources.get(part)).items():
            path = f"{at}.{part}[{name}]"
            _resource_name(name, errs, path)
            try:
                amount = quantity.parse_json(value)
            except quantity.QuantityError:
                continue  # refused when decoding already
            parsed[part][name] = amount
            if amount < 0:
                errs.invalid(path, str(value), "must be greater than or equal to 0")
    for name, amount in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and amount > limit:
            shown = _map(resources.get("limits")).get(name)
            errs.invalid(
                f"{at}.requests",
                str(_map(resources.get("requests")).get(name)),
                f"must be less than or equal to {name} limit of {shown}",
            )
