"""From a Pod's container to what the runtime starts (pure).

The kubelet's part of "make a container": the argv from the image's entrypoint and the container's
`command`/`args` with `$(VAR)` expansion, the environment (the `kubernetes` Service's variables,
`env` with downward-API `fieldRef` and `resourceFieldRef`, ConfigMap/Secret keys, `envFrom`),
volume mounts (with `subPath`) and devices, the memory limit. Images never run here: a reference
resolved to kvd's own image runs this installation's `kvd`; a host-tool image (busybox) the host's
binaries; a stored disk image has no program, so its container needs a `command`.

Errors carry the reason the kubelet would report in the container's `waiting` state
(`CreateContainerConfigError`, `ErrImagePull`, `ContainerCreating`) or, for a program that is not
there, the runtime's `StartError`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvd.api.quantity import Quantity, QuantityError
from kvd.local import images
from kvd.local.node import containers

Json = dict[str, Any]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What a kubelet gives every container about the `kubernetes` Service, so in-cluster clients
# find the API server (its cluster IP: the first of the API server's service CIDR,
# `workloads.services.SERVICE_CIDR`; the node makes it reachable, `proxy`). A container's own
# `env` overrides them.
API_SERVICE_HOST, API_SERVICE_PORT = "10.43.0.1", "443"
API_SERVICE_ENV = {
    "KUBERNETES_SERVICE_HOST": API_SERVICE_HOST,
    "KUBERNETES_SERVICE_PORT": API_SERVICE_PORT,
    "KUBERNETES_SERVICE_PORT_HTTPS": API_SERVICE_PORT,
    "KUBERNETES_PORT": f"tcp://{API_SERVICE_HOST}:{API_SERVICE_PORT}",
    f"KUBERNETES_PORT_{API_SERVICE_PORT}_TCP": f"tcp://{API_SERVICE_HOST}:{API_SERVICE_PORT}",
    f"KUBERNETES_PORT_{API_SERVICE_PORT}_TCP_PROTO": "tcp",
    f"KUBERNETES_PORT_{API_SERVICE_PORT}_TCP_PORT": API_SERVICE_PORT,
    f"KUBERNETES_PORT_{API_SERVICE_PORT}_TCP_ADDR": API_SERVICE_HOST,
}

Lookup = Callable[[str, str, str], Json | None]
"""(kind "configmaps" | "secrets", namespace, name) → the object, or None when it does not exist."""


class ContainerConfigError(Exception):
    """A container that cannot be started as specified; `reason` is the kubelet's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Volume:
    """A pod volume as it exists on the host."""

    source: Path
    read_only: bool = False
    block: bool = False
    block_claim: bool = False
    """A `volumeMode: Block` claim: the kubelet maps it into a container (volumeDevices) and
    never mounts it, so a volumeMount of it is refused (a hostPath of a device is mounted)."""


@dataclass(frozen=True, kw_only=True)
class PodContext:
    """What the downward API can show about the pod, beyond its own manifest."""

    node_name: str
    pod_ip: str
    host_ip: str


def container_spec(
    pod: Json,
    container: Json,
    *,
    image: images.Resolved,
    volumes: Mapping[str, Volume],
    context: PodContext,
    lookup: Lookup,
) -> containers.ContainerSpec:
    env = environment(pod, container, image=image, context=context, lookup=lookup)
    argv = _argv(container, image, env)
    user, group, read_only_root = security(pod, container)
    hidden = _hidden_ancestors(image) if user not in (None, 0) else ()
    return containers.ContainerSpec(
        name=container["name"],
        argv=argv,
        env=env,
        working_dir=Path(container["workingDir"]) if container.get("workingDir") else None,
        mounts=_mounts(container, volumes) + _installation_mounts(image, also=bool(hidden)),
        private=containers.DEFAULT_PRIVATE + hidden,
        memory_limit=_memory_limit(container),
        user=user,
        group=group,
        read_only_root=read_only_root,
    )


def security(pod: Json, container: Json) -> tuple[int | None, int | None, bool]:
    """(uid, gid, read-only root) from the container's securityContext over the pod's, as the
    kubelet merges them; runAsNonRoot is checked as the kubelet checks it, with its message.
    Every image here runs as root unless told otherwise (kvd's own runs this installation)."""
    pod_ctx = (pod.get("spec") or {}).get("securityContext") or {}
    ctx = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return ctx[key] if ctx.get(key) is not None else pod_ctx.get(key)

    user, group, non_root = pick("runAsUser"), pick("runAsGroup"), pick("runAsNonRoot")
    for key, value in (("runAsUser", user), ("runAsGroup", group)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ContainerConfigError(
                "CreateContainerConfigError", f"securityContext.{key} must be an integer"
            )
    if non_root:
        meta = pod["metadata"]
        where = f'(pod: "{meta["name"]}_{meta["namespace"]}({meta.get("uid", "")})", container: '
        where += f"{container['name']})"
        if user == 0:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                f"container's runAsUser breaks non-root policy {where}",
            )
        if user is None:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                f"container has runAsNonRoot and image will run as root {where}",
            )
    return user, group, bool(ctx.get("readOnlyRootFilesystem"))


def environment(
    pod: Json,
    container: Json,
    *,
    image: images.Resolved,
    context: PodContext,
    lookup: Lookup,
) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    path = f"{image.bin_dir}:{DEFAULT_PATH}" if isinstance(image, images.KvdImage) else DEFAULT_PATH
    env: dict[str, str] = {"PATH": path, "HOSTNAME": pod["metadata"]["name"], **API_SERVICE_ENV}
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, namespace, lookup))
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" in var:
            value = _value_from(var["valueFrom"], pod, container, context, lookup, name=name)
            if value is None:
                continue
            env[name] = value
        else:
            env[name] = expand(var.get("value") or "", env)
    return env


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` escapes, and a reference
    to an undefined name stays as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REF.sub(replace, text)


def _argv(container: Json, image: images.Resolved, env: Mapping[str, str]) -> tuple[str, ...]:
    entrypoint, cmd = _image_defaults(image)
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [*command, *(args or [])]
    else:
        argv = [*entrypoint, *(args if args is not None else cmd)]
    argv = [expand(a, env) for a in argv]
    if not argv:
        raise ContainerConfigError(
            "CreateContainerConfigError",
            f'image "{container.get("image")}" has no entrypoint: give container '
            f'"{container["name"]}" a command',
        )
    program = argv[0]
    found = (
        shutil.which(program, path=env.get("PATH", DEFAULT_PATH))
        if "/" not in program
        else (program if os.access(program, os.X_OK) and not os.path.isdir(program) else None)
    )
    if found is None:
        raise ContainerConfigError(
            "StartError",
            f'exec: "{program}": '
            + (
                "executable file not found in $PATH"
                if "/" not in program
                else "no such file or directory"
            ),
        )
    return (found, *argv[1:])


def _image_defaults(image: images.Resolved) -> tuple[list[str], list[str]]:
    """(ENTRYPOINT, CMD) of an image, as its manifest would have them."""
    if isinstance(image, images.KvdImage):
        return ["kvd"], []
    if isinstance(image, images.HostImage):
        return [], ["sh"]
    return [], []


def _value_from(
    source: Json, pod: Json, container: Json, context: PodContext, lookup: Lookup, *, name: str
) -> str | None:
    if "fieldRef" in source:
        return _field(pod, source["fieldRef"]["fieldPath"], context)
    if "resourceFieldRef" in source:
        return resource_field(container, source["resourceFieldRef"])
    for key, kind in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
        if key in source:
            ref = source[key]
            data = _data(kind, pod["metadata"]["namespace"], ref["name"], lookup)
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    return None
                what = "configmap" if kind == "configmaps" else "secret"
                missing = (
                    f'{what} "{ref["name"]}" not found'
                    if data is None
                    else (
                        f"couldn't find key {ref['key']} in {what.capitalize()} "
                        f"{pod['metadata']['namespace']}/{ref['name']}"
                    )
                )
                raise ContainerConfigError("CreateContainerConfigError", missing)
            return data[ref["key"]]
    raise ContainerConfigError(
        "CreateContainerConfigError",
        f"env {name}: valueFrom source not supported by kvd's local node",
    )


def _field(pod: Json, path: str, context: PodContext) -> str:
    meta = pod["metadata"]
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": context.node_name,
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
        "status.podIP": context.pod_ip,
        "status.podIPs": context.pod_ip,
        "status.hostIP": context.host_ip,
        "status.hostIPs": context.host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError("CreateContainerConfigError", f'fieldRef "{path}" is not supported')


def resource_field(container: Json, ref: Json) -> str:
    """A `resourceFieldRef` of `container` (env or downward-API file), in its divisor."""
    kind, _, resource = ref["resource"].partition(".")
    raw = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    if raw is None:
        return "0"
    try:
        value = Quantity.parse(raw).value / Quantity.parse(ref.get("divisor") or "1").value
    except (QuantityError, ArithmeticError) as exc:
        raise ContainerConfigError("CreateContainerConfigError", str(exc)) from exc
    return str(int(value.to_integral_value(rounding="ROUND_CEILING")))


def _env_from(source: Json, namespace: str, lookup: Lookup) -> dict[str, str]:
    prefix = source.get("prefix") or ""
    for key, kind in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
        if key in source:
            ref = source[key]
            data = _data(kind, namespace, ref["name"], lookup)
            if data is None:
                if ref.get("optional"):
                    return {}
                what = "configmap" if kind == "configmaps" else "secret"
                raise ContainerConfigError(
                    "CreateContainerConfigError", f'{what} "{ref["name"]}" not found'
                )
            return {prefix + k: v for k, v in data.items()}
    return {}


def _data(kind: str, namespace: str, name: str, lookup: Lookup) -> dict[str, str] | None:
    obj = lookup(kind, namespace, name)
    if obj is None:
        return None
    data = dict(obj.get("data") or {})
    if kind == "secrets":
        import base64  # noqa: PLC0415 - only secrets need it

        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        data.update(obj.get("stringData") or {})
    return {str(k): str(v) for k, v in data.items()}


def _mounts(container: Json, volumes: Mapping[str, Volume]) -> tuple[containers.Mount, ...]:
    mounts = []
    for m in container.get("volumeMounts") or []:
        volume = _volume(volumes, m["name"], container)
        if volume.block_claim:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                f'volume "{m["name"]}" is a volumeMode: Block claim: use volumeDevices for it, '
                "not volumeMounts",
            )
        source = volume.source
        if m.get("subPath"):
            sub = Path(m["subPath"])
            if sub.is_absolute() or ".." in sub.parts:
                raise ContainerConfigError(
                    "CreateContainerConfigError",
                    f"subPath {m['subPath']!r} must be a relative path without '..'",
                )
            source = source / sub
            if not source.exists():
                if volume.read_only:
                    raise ContainerConfigError(
                        "CreateContainerConfigError",
                        f'subPath "{sub}" does not exist in volume "{m["name"]}"',
                    )
                source.mkdir(parents=True, exist_ok=True)
        mounts.append(
            containers.Mount(
                path=Path(m["mountPath"]),
                source=source,
                read_only=bool(m.get("readOnly")) or volume.read_only,
            )
        )
    for d in container.get("volumeDevices") or []:
        volume = _volume(volumes, d["name"], container)
        if not volume.block:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                f'volume "{d["name"]}" is not a block volume: use volumeMounts for it',
            )
        mounts.append(containers.Mount(path=Path(d["devicePath"]), source=volume.source))
    return tuple(mounts)


def _installation_mounts(image: images.Resolved, *, also: bool) -> tuple[containers.Mount, ...]:
    """kvd's own image runs this installation's files: where they lie under a path the container
    gets privately (a checkout in /tmp, say), or `also` (under a directory only root can cross,
    which the container gets as an empty tmpfs: `_hidden_ancestors`), it must still see them,
    read-only."""
    if not isinstance(image, images.KvdImage):
        return ()
    return tuple(
        containers.Mount(path=root, source=root, read_only=True)
        for root in image.installation
        if also or any(root.is_relative_to(private) for private in containers.DEFAULT_PRIVATE)
    )


def _hidden_ancestors(image: images.Resolved) -> tuple[Path, ...]:
    """The directories above this installation that a non-root user cannot cross (a pyenv
    under /root, mode 0700): the container gets each as a tmpfs holding just the installation,
    as an image would hold it."""
    if not isinstance(image, images.KvdImage):
        return ()
    found = []
    for root in image.installation:
        for parent in reversed(root.parents):
            if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
                found.append(parent)
                break
    return tuple(sorted(set(found)))


def _volume(volumes: Mapping[str, Volume], name: str, container: Json) -> Volume:
    if name not in volumes:
        raise ContainerConfigError(
            "CreateContainerConfigError",
            f'container "{container["name"]}" refers to volume "{name}", '
            "which the pod does not have",
        )
    return volumes[name]


def _memory_limit(container: Json) -> int | None:
    raw = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if raw is None:
        return None
    try:
        return Quantity.parse(raw).bytes()
    except QuantityError as exc:
        raise ContainerConfigError("CreateContainerConfigError", str(exc)) from exc
