"""A pod's volumes, made real on the host before its containers start.

emptyDir → a directory the runtime keeps per pod; hostPath → the path, checked or created per
its `type`; `image` (the Kubernetes image volume) → the image's root in the local store,
read-only; configMap/secret → their keys written as files under a per-pod directory;
projected/downwardAPI → files from several sources (a service-account token among them), kept
current and swapped atomically (`projected`); persistentVolumeClaim → the bound
PersistentVolume's `hostPath`/`local` path (a block device when `volumeMode: Block`; a Block
volume whose path is a regular file — kvd's local provisioner makes them so — gets the loop
device over that file, attached if none is). A claim that is missing or not bound yet keeps the
pod in ContainerCreating, retried, as a kubelet waits for its volumes. Anything else is refused
with a message that names the volume type.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvd.local import images
from kvd.local.node import projected
from kvd.local.node.podspec import ContainerConfigError, Lookup, Volume
from kvd.local.storage import loop

Json = dict[str, Any]

ReadPVC = Callable[[str, str], tuple[Json | None, Json | None]]
"""(namespace, claim) → (the claim, its bound volume): None for what does not exist (yet)."""


def prepare(
    pod: Json,
    *,
    volume_dir: Callable[[str], Path],
    store: images.ImageStore,
    lookup: Lookup,
    read_pvc: ReadPVC,
    tokens: projected.TokenSource | None = None,
) -> dict[str, Volume]:
    namespace = pod["metadata"]["namespace"]
    prepared: dict[str, Volume] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        if "emptyDir" in volume:
            prepared[name] = Volume(source=volume_dir(name))
        elif "hostPath" in volume:
            prepared[name] = _host_path(name, volume["hostPath"])
        elif "image" in volume:
            prepared[name] = _image(name, volume["image"], store)
        elif "configMap" in volume or "secret" in volume:
            prepared[name] = _projection(name, volume, namespace, volume_dir(name), lookup)
        elif "projected" in volume or "downwardAPI" in volume:
            target = volume_dir(name)
            projected.write(name, volume, pod, target, lookup=lookup, tokens=tokens)
            prepared[name] = Volume(source=target, read_only=True)
        elif "persistentVolumeClaim" in volume:
            prepared[name] = _claim(name, volume["persistentVolumeClaim"], namespace, read_pvc)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ContainerConfigError(
                "CreateContainerConfigError",
                f'volume "{name}": {", ".join(kinds) or "no source"} volumes are not supported by '
                "kvd's local node (emptyDir, hostPath, image, configMap, secret, projected, "
                "downwardAPI, persistentVolumeClaim are)",
            )
    return prepared


def _host_path(name: str, spec: Json) -> Volume:
    path = Path(spec["path"])
    kind = spec.get("type") or ""
    checks: dict[str, Callable[[os.stat_result], bool]] = {
        "Directory": lambda s: stat.S_ISDIR(s.st_mode),
        "File": lambda s: stat.S_ISREG(s.st_mode),
        "Socket": lambda s: stat.S_ISSOCK(s.st_mode),
        "CharDevice": lambda s: stat.S_ISCHR(s.st_mode),
        "BlockDevice": lambda s: stat.S_ISBLK(s.st_mode),
    }
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind in checks:
        try:
            ok = checks[kind](path.stat())
        except FileNotFoundError:
            ok = False
        if not ok:
            raise ContainerConfigError(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{name}": hostPath type check failed: '
                f"{path} is not a {kind}",
            )
    elif not path.exists():
        # Type "" (no check): the kubelet's runtime creates a missing directory.
        path.mkdir(parents=True, exist_ok=True)
    return Volume(source=path, block=stat.S_ISBLK(path.stat().st_mode))


def _image(name: str, spec: Json, store: images.ImageStore) -> Volume:
    reference = spec.get("reference") or ""
    try:
        resolved = store.resolve(reference)
    except images.ImageNotFound as exc:
        raise ContainerConfigError("ErrImagePull", f'volume "{name}": {exc}') from exc
    if not isinstance(resolved, images.StoredImage):
        raise ContainerConfigError(
            "CreateContainerConfigError",
            f'volume "{name}": image "{reference}" has no files to mount (it runs programs)',
        )
    return Volume(source=resolved.root, read_only=True)


def _projection(name: str, volume: Json, namespace: str, target: Path, lookup: Lookup) -> Volume:
    kind, spec = (
        ("configmaps", volume["configMap"])
        if "configMap" in volume
        else ("secrets", volume["secret"])
    )
    object_name = spec.get("name") or spec.get("secretName") or ""
    obj = lookup(kind, namespace, object_name)
    if obj is None:
        if spec.get("optional"):
            return Volume(source=target, read_only=True)
        what = "configmap" if kind == "configmaps" else "secret"
        raise ContainerConfigError(
            "ContainerCreating",
            f'MountVolume.SetUp failed for volume "{name}": {what} "{object_name}" not found',
        )
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    if kind == "secrets":
        data = {k: base64.b64decode(v) for k, v in data.items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = spec.get("items")
    paths = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    mode = int(spec.get("defaultMode") or 0o644)
    for key, relative in paths.items():
        if key not in data:
            continue
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data[key])
        tmp.chmod(mode)
        os.replace(tmp, path)
    return Volume(source=target, read_only=True)


def _claim(name: str, spec: Json, namespace: str, read_pvc: ReadPVC) -> Volume:
    claim_name = spec["claimName"]
    claim, volume = read_pvc(namespace, claim_name)
    if claim is None:
        raise ContainerConfigError(
            "ContainerCreating", f'persistentvolumeclaim "{claim_name}" not found'
        )
    if volume is None:
        raise ContainerConfigError(
            "ContainerCreating",
            f'persistentvolumeclaim "{claim_name}" is not bound to a volume yet',
        )
    source = (volume.get("spec") or {}).get("hostPath") or (volume.get("spec") or {}).get("local")
    if not source:
        raise ContainerConfigError(
            "CreateContainerConfigError",
            f'volume "{name}": persistentvolume "{volume["metadata"]["name"]}" has no hostPath or '
            "local source, the only kinds kvd's local node can attach",
        )
    path = Path(source["path"])
    if not path.exists():
        raise ContainerConfigError(
            "ContainerCreating", f'volume "{name}": {path} of persistentvolume does not exist'
        )
    block = (volume.get("spec") or {}).get("volumeMode") == "Block"
    if block and path.is_file():
        try:
            path = loop.attach(path)
        except loop.LoopError as exc:
            raise ContainerConfigError(
                "ContainerCreating", f'MapVolume.SetUpDevice failed for volume "{name}": {exc}'
            ) from exc
    return Volume(source=path, read_only=bool(spec.get("readOnly")), block=block, block_claim=block)
