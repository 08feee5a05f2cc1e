"""`projected` and `downwardAPI` volumes: files the node writes from several sources, kept
current, swapped in atomically.

Sources, as the kubelet projects them: `serviceAccountToken` (a token bound to the pod, from
`tokens.TokenManager`, renewed before it ages), `configMap` and `secret` (their keys, or the
`items` chosen), `downwardAPI` (the pod's metadata.name/namespace/uid, its labels and
annotations — all, as `key="value"` lines, or one — and a container's resources). A file's mode
is its item's `mode`, else the volume's `defaultMode` (0644). Sources kube has but this node
cannot serve (clusterTrustBundle, podCertificate) are refused naming the source.

Files are written as the kubelet's atomic writer does, so a reader never sees half of an
update: the payload goes into a fresh hidden directory, the `..data` symlink is switched to it
with one rename, and each visible name is a symlink through `..data`. An unchanged payload
writes nothing.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from kvd.kube.client import ApiError
from kvd.local.node import podspec
from kvd.local.node.podspec import ContainerConfigError, Lookup

Json = dict[str, Any]

DEFAULT_MODE = 0o644
DATA = "..data"


class TokenSource(Protocol):
    def token(self, pod: Json, *, audience: str, expiration_seconds: int) -> str:
        """A token for the pod's service account, bound to the pod."""
        ...


def write(
    name: str,
    volume: Json,
    pod: Json,
    target: Path,
    *,
    lookup: Lookup,
    tokens: TokenSource | None,
) -> None:
    """Project `volume` (a `projected` or `downwardAPI` volume of `pod`) into `target`."""
    if "downwardAPI" in volume:
        spec = volume["downwardAPI"] or {}
        sources = [{"downwardAPI": spec}]
    else:
        spec = volume["projected"] or {}
        sources = spec.get("sources") or []
    default_mode = int(spec.get("defaultMode") or DEFAULT_MODE)
    payload: dict[str, tuple[bytes, int]] = {}
    for source in sources:
        for path, (data, mode) in _source(name, source, pod, lookup, tokens).items():
            payload[path] = (data, default_mode if mode is None else mode)
    atomic_write(target, payload)


def _source(
    name: str, source: Json, pod: Json, lookup: Lookup, tokens: TokenSource | None
) -> dict[str, tuple[bytes, int | None]]:
    namespace = pod["metadata"]["namespace"]
    if "serviceAccountToken" in source:
        spec = source["serviceAccountToken"]
        if tokens is None:
            raise ContainerConfigError(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{name}": this node has no token source',
            )
        try:
            token = tokens.token(
                pod,
                audience=str(spec.get("audience") or ""),
                expiration_seconds=int(spec.get("expirationSeconds") or 3600),
            )
        except ApiError as exc:
            raise ContainerConfigError(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{name}": failed to fetch token: '
                f"{exc.message or exc}",
            ) from exc
        return {spec["path"]: (token.encode(), None)}
    for kind, what in (("configMap", "configmaps"), ("secret", "secrets")):
        if kind in source:
            return _keys(name, source[kind], what, namespace, lookup)
    if "downwardAPI" in source:
        return {
            item["path"]: (_downward(name, item, pod).encode(), item.get("mode"))
            for item in (source["downwardAPI"] or {}).get("items") or []
        }
    kinds = sorted(source) or ["no"]
    raise ContainerConfigError(
        "CreateContainerConfigError",
        f'volume "{name}": {", ".join(kinds)} sources are not supported by kvd\'s local node '
        "(serviceAccountToken, configMap, secret, downwardAPI are)",
    )


def _keys(
    name: str, spec: Json, kind: str, namespace: str, lookup: Lookup
) -> dict[str, tuple[bytes, int | None]]:
    object_name = spec.get("name") or ""
    obj = lookup(kind, namespace, object_name)
    if obj is None:
        if spec.get("optional"):
            return {}
        what = "configmap" if kind == "configmaps" else "secret"
        raise ContainerConfigError(
            "ContainerCreating",
            f'MountVolume.SetUp failed for volume "{name}": {what} "{object_name}" not found',
        )
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    if kind == "secrets":
        data = {k: base64.b64decode(v) for k, v in data.items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = spec.get("items")
    if not items:
        return {key: (value, None) for key, value in data.items()}
    out: dict[str, tuple[bytes, int | None]] = {}
    for item in items:
        if item["key"] not in data:
            if spec.get("optional"):
                continue
            raise ContainerConfigError(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{name}": configmap references non-existent '
                f"config key: {item['key']}"
                if kind == "configmaps"
                else f'MountVolume.SetUp failed for volume "{name}": references non-existent '
                f"secret key: {item['key']}",
            )
        out[item["path"]] = (data[item["key"]], item.get("mode"))
    return out


def _downward(name: str, item: Json, pod: Json) -> str:
    meta = pod["metadata"]
    if "resourceFieldRef" in item:
        ref = item["resourceFieldRef"]
        containers = [
            *((pod.get("spec") or {}).get("initContainers") or []),
            *((pod.get("spec") or {}).get("containers") or []),
        ]
        container = next((c for c in containers if c["name"] == ref.get("containerName")), None)
        if container is None:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                f'volume "{name}": resourceFieldRef names no container of the pod '
                f"({ref.get('containerName')!r})",
            )
        return podspec.resource_field(container, ref)
    path = ((item.get("fieldRef") or {}).get("fieldPath")) or ""
    if path in ("metadata.labels", "metadata.annotations"):
        return _format_map(meta.get(path.split(".")[1]) or {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
    }
    if path in simple:
        return str(simple[path] or "")
    if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(
        "CreateContainerConfigError",
        f'volume "{name}": fieldRef "{path}" is not supported in a volume (metadata.name, '
        "namespace, uid, labels, annotations are)",
    )


def _format_map(values: Mapping[str, Any]) -> str:
    """Labels or annotations as the kubelet writes them: sorted `key="value"` lines."""
    return "\n".join(
        f"{key}={json.dumps(str(values[key]), ensure_ascii=False)}" for key in sorted(values)
    )


# --- the atomic writer ----------------------------------------------------------------------


def atomic_write(target: Path, payload: Mapping[str, tuple[bytes, int]]) -> bool:
    """Make `target` hold exactly `payload` (relative path → (bytes, mode)), switching all at
    once; False when it already did (nothing written)."""
    for relative in payload:
        parts = PurePosixPath(relative).parts
        if PurePosixPath(relative).is_absolute() or ".." in parts or not parts:
            raise ContainerConfigError(
                "CreateContainerConfigError", f"volume path {relative!r} must be relative"
            )
        if parts[0].startswith(".."):
            raise ContainerConfigError(
                "CreateContainerConfigError", f"volume path {relative!r} may not start with '..'"
            )
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / DATA
    current = target / os.readlink(data_link) if data_link.is_symlink() else None
    if current is not None and _holds(current, payload):
        return False
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y_%m_%d_%H_%M_%S")
    fresh = target / f"..{stamp}.{secrets.token_hex(4)}"
    fresh.mkdir(mode=0o755)
    for relative, (data, mode) in payload.items():
        path = fresh / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(data)
        path.chmod(mode)
    link = target / f"{DATA}_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(fresh.name)
    os.replace(link, data_link)  # the switch: readers see the old set or the new one
    visible = {PurePosixPath(relative).parts[0] for relative in payload}
    for top in visible:
        entry = target / top
        if not entry.is_symlink():
            entry.symlink_to(f"{DATA}/{top}")
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            if entry.name not in (DATA, fresh.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
        elif entry.name not in visible:
            _remove(entry)
    return True


def _holds(directory: Path, payload: Mapping[str, tuple[bytes, int]]) -> bool:
    found = {str(p.relative_to(directory)): p for p in directory.rglob("*") if p.is_file()}
    if set(found) != set(payload):
        return False
    for relative, (data, mode) in payload.items():
        path = found[relative]
        if path.stat().st_mode & 0o7777 != mode or path.read_bytes() != data:
            return False
    return True


def _remove(entry: Path) -> None:
    if entry.is_symlink() or entry.is_file():
        entry.unlink()
    elif entry.is_dir():
        shutil.rmtree(entry)
