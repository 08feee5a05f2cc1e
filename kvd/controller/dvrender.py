"""A DataVolume → its PVC and its importer pod, pure (CDI's import-controller renders the same).

- The PVC has the DV's name, an owner reference to it (controller, blocking deletion), CDI's
  labels and import annotations. `spec.pvc` is taken as written; `spec.storage` gets CDI's
  defaults: ReadWriteOnce, Filesystem, the cluster's default class (left unset, so the API
  server's default applies), and the size of a cloned claim when none is given.
- The importer pod (`importer-<dv>`, restartPolicy Never: the controller restarts it, counting
  and backing off) runs `kvd importer` from kvd's image with the claim at /data (Filesystem,
  mounted) or /dev/cdi-block-volume (Block, a device), a scratch emptyDir for downloads, the
  Secret and the CA ConfigMap as volumes (credentials never in arguments), the containerDisk as
  an `image` volume, or the source claim read-only. It holds no API token: it reports on its
  metrics port and in its log.
"""

from __future__ import annotations

from typing import Any

from kvd.api import datavolume as dvapi
from kvd.api.datavolume import DataVolume
from kvd.version import kvd_image

Json = dict[str, Any]

DATA_DIR = "/data"
BLOCK_DEVICE = "/dev/cdi-block-volume"
SCRATCH_DIR = "/scratch"
SECRET_DIR = "/var/run/kvd/import/secret"
CERT_DIR = "/var/run/kvd/import/certs"
SOURCE_DIR = "/var/run/kvd/import/source"
IMPORTER_PREFIX = "importer-"
IMPORTER_LABEL = "cdi.kubevirt.io"
IMPORTER_VALUE = "importer"
IMPORTER_SELECTOR = f"{IMPORTER_LABEL}={IMPORTER_VALUE}"


class RenderError(ValueError):
    """The DataVolume cannot be turned into a claim or pod; the message names the field."""


def owner_reference(dv: Json) -> Json:
    meta = dv["metadata"]
    return {
        "apiVersion": f"{dvapi.GROUP}/{dvapi.VERSION}",
        "kind": dvapi.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def source_kind(dv: DataVolume) -> str:
    source = dv.spec.source
    if source is None:
        raise RenderError("spec.source: kvd needs a source (sourceRef is not supported)")
    for kind in ("http", "registry", "pvc", "blank"):
        if getattr(source, kind) is not None:
            return kind
    raise RenderError("spec.source: no source given")


def claim(dv: DataVolume, raw: Json, *, source_claim: Json | None = None) -> Json:
    """The PVC the DataVolume fills."""
    kind = source_kind(dv)
    if dv.spec.pvc is not None:
        spec: Json = dict(dv.spec.pvc)
    else:
        storage = dv.spec.storage
        assert storage is not None
        spec = {"accessModes": list(storage.access_modes or ("ReadWriteOnce",))}
        spec["volumeMode"] = storage.volume_mode or "Filesystem"
        # "" is no class at all (a volume made by hand), as on a claim: kept, or the API server
        # would give the claim the default class and it could never bind. The parsed spec does
        # not tell "" from unset, the manifest does.
        written = ((raw.get("spec") or {}).get("storage") or {}).get("storageClassName")
        if storage.storage_class_name or written == "":
            spec["storageClassName"] = storage.storage_class_name or ""
        if storage.selector:
            spec["selector"] = storage.selector
        if storage.volume_name:
            spec["volumeName"] = storage.volume_name
        size = dvapi.size_of(dv)
        if size is None and source_claim is not None:
            size = (
                ((source_claim.get("spec") or {}).get("resources") or {})
                .get("requests", {})
                .get("storage")
            )
        if size is None:
            raise RenderError(
                "spec.storage.resources.requests.storage: required (kvd cannot infer the size "
                "of this source)"
            )
        spec["resources"] = {"requests": {"storage": str(size)}}
    annotations = {
        dvapi.ANN_SOURCE: "none" if kind == "blank" else kind,
        dvapi.ANN_CONTENT_TYPE: "kubevirt",
        dvapi.ANN_CREATED_FOR: raw["metadata"]["uid"],
        # the importer is the claim's first consumer (see controller/datavolume.py)
        dvapi.ANN_BIND_IMMEDIATE: "true",
    }
    source = dv.spec.source
    assert source is not None
    if source.http is not None:
        annotations[dvapi.ANN_ENDPOINT] = source.http.url
        if source.http.secret_ref:
            annotations[dvapi.ANN_SECRET] = source.http.secret_ref
        if source.http.cert_config_map:
            annotations[dvapi.ANN_CERT_CONFIGMAP] = source.http.cert_config_map
    elif source.registry is not None:
        annotations[dvapi.ANN_ENDPOINT] = source.registry.url or ""
    elif source.pvc is not None:
        annotations[dvapi.ANN_CLONE_REQUEST] = f"{source.pvc.namespace}/{source.pvc.name}"
    meta = raw["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": {dvapi.LABEL_APP: dvapi.APP_CDI},
            "annotations": annotations,
            "ownerReferences": [owner_reference(raw)],
        },
        "spec": spec,
    }


def claim_bound(claim: Json) -> bool:
    """Bound as kube's binder says it (phase Bound), or, with no phase at all, bound to a volume
    by name (a cluster without a binder: the node mounts the named volume)."""
    phase = (claim.get("status") or {}).get("phase")
    if phase:
        return bool(phase == "Bound")
    return bool((claim.get("spec") or {}).get("volumeName"))


def claim_bytes(claim: Json) -> int | None:
    """The claim's size: its capacity once bound, else what it requests."""
    from kvd.api.quantity import Quantity, QuantityError  # noqa: PLC0415

    raw = ((claim.get("status") or {}).get("capacity") or {}).get("storage") or (
        ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    ).get("storage")
    if raw is None:
        return None
    try:
        return Quantity.parse(raw).bytes()
    except QuantityError:
        return None


def importer_pod(dv: DataVolume, raw: Json, claim: Json, *, image: str = "") -> Json:
    """The pod that fills `claim` from the DataVolume's source."""
    meta = raw["metadata"]
    kind = source_kind(dv)
    source = dv.spec.source
    assert source is not None
    block = (claim.get("spec") or {}).get("volumeMode") == "Block"
    args = ["--source", kind, "--owner-uid", meta["uid"]]
    volumes: list[Json] = [
        {"name": "cdi-data-vol", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}},
        {"name": "cdi-scratch-vol", "emptyDir": {}},
    ]
    mounts: list[Json] = [{"name": "cdi-scratch-vol", "mountPath": SCRATCH_DIR}]
    devices: list[Json] = []
    if block:
        devices.append({"name": "cdi-data-vol", "devicePath": BLOCK_DEVICE})
        args += ["--target", BLOCK_DEVICE]
    else:
        mounts.append({"name": "cdi-data-vol", "mountPath": DATA_DIR})
        args += ["--target", DATA_DIR]
        size = claim_bytes(claim)
        if size is not None:
            args += ["--capacity", str(size)]
    args += ["--scratch", SCRATCH_DIR]
    if source.http is not None:
        args += ["--url", source.http.url]
        for header in source.http.extra_headers:
            args += ["--header", header]
        if source.http.secret_ref:
            volumes.append({"name": "cdi-secret", "secret": {"secretName": source.http.secret_ref}})
            mounts.append({"name": "cdi-secret", "mountPath": SECRET_DIR, "readOnly": True})
            args += ["--secret-dir", SECRET_DIR]
        if source.http.cert_config_map:
            volumes.append(
                {"name": "cdi-certs", "configMap": {"name": source.http.cert_config_map}}
            )
            mounts.append({"name": "cdi-certs", "mountPath": CERT_DIR, "readOnly": True})
            args += ["--cert-dir", CERT_DIR]
    elif source.registry is not None:
        reference = (source.registry.url or "").removeprefix("docker://")
        volumes.append({"name": "cdi-source", "image": {"reference": reference}})
        mounts.append({"name": "cdi-source", "mountPath": SOURCE_DIR, "readOnly": True})
        args += ["--source-path", SOURCE_DIR]
    elif source.pvc is not None:
        if source.pvc.namespace != meta["namespace"]:
            raise RenderError(
                "spec.source.pvc.namespace: cloning from another namespace is not supported by "
                "kvd yet (the source claim must be in the DataVolume's namespace)"
            )
        volumes.append(
            {
                "name": "cdi-source",
                "persistentVolumeClaim": {"claimName": source.pvc.name, "readOnly": True},
            }
        )
        mounts.append({"name": "cdi-source", "mountPath": SOURCE_DIR, "readOnly": True})
        args += ["--source-path", SOURCE_DIR]
    container: Json = {
        "name": "importer",
        "image": image or kvd_image(),
        "command": ["kvd", "importer"],
        "args": args,
        "ports": [{"name": "metrics", "containerPort": 8443, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        "volumeMounts": mounts,
    }
    if devices:
        container["volumeDevices"] = devices
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": importer_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {dvapi.LABEL_APP: dvapi.APP_CDI, IMPORTER_LABEL: IMPORTER_VALUE},
            "annotations": {dvapi.ANN_CREATED_FOR: meta["uid"]},
            "ownerReferences": [owner_reference(raw)],
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "containers": [container],
            "volumes": volumes,
        },
    }


def importer_name(dv_name: str) -> str:
    return f"{IMPORTER_PREFIX}{dv_name}"[:253]
