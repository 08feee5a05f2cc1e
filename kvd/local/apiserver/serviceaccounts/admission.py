"""The ServiceAccount admission plugin, as kube-apiserver's: every new pod runs as an account.

A pod without `serviceAccountName` gets `default` (and the deprecated `serviceAccount` alias
mirrors it, as kube's v1 conversion shows it). The account must exist: a pod naming one that does
not is refused, 403, with kube's message (for `default`, the controller is asked to make it
first, as kube's plugin waits for its controller). Unless the pod, or else the account, says
`automountServiceAccountToken: false`, the pod gets kube's projected volume
`kube-api-access-<5 random>` — a bound token (`token`, 3607 s), the cluster CA (`ca.crt` from
the `kube-root-ca.crt` ConfigMap) and the namespace (`namespace`), mode 0644 — mounted read-only
at /var/run/secrets/kubernetes.io/serviceaccount in every init container and container that
has nothing mounted there yet. Updates are left alone: a pod's account is fixed at creation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvd.local.apiserver import errors, meta
from kvd.local.apiserver.registry import ResourceDef
from kvd.local.apiserver.serviceaccounts import controller
from kvd.local.apiserver.store import Store

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION = 3607  # kube's: an hour and seven seconds, recognisable in audits
DEFAULT_MODE = 0o644


def token_volume(name: str) -> dict[str, Any]:
    """kube's projected service-account volume, exactly as its plugin injects it."""
    return {
        "name": name,
        "projected": {
            "defaultMode": DEFAULT_MODE,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {
                    "configMap": {
                        "name": controller.ROOT_CA,
                        "items": [{"key": controller.CA_KEY, "path": controller.CA_KEY}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


class ServiceAccountAdmission:
    """`ensure_default(namespace)` makes the namespace's `default` account when missing (the
    controller's `sync`)."""

    def __init__(self, store: Store, ensure_default: Callable[[str], None]) -> None:
        self.store = store
        self.ensure_default = ensure_default

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> list[str]:
        if (resource.group, resource.plural) != ("", "pods"):
            return []
        spec = obj.get("spec")
        metadata = obj.get("metadata") or {}
        if not isinstance(spec, dict):
            return []  # not a pod anyone can run; validation says so
        if _is_mirror(metadata):
            return []
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or controller.DEFAULT
        if not isinstance(name, str):
            return []  # validation refuses it
        spec["serviceAccountName"] = spec["serviceAccount"] = name
        namespace = str(metadata.get("namespace") or "")
        account = self.store.get(controller.SERVICEACCOUNTS, namespace, name)
        if account is None and name == controller.DEFAULT:
            self.ensure_default(namespace)
            account = self.store.get(controller.SERVICEACCOUNTS, namespace, name)
        if account is None:
            pod = str(metadata.get("name") or "")
            raise errors.APIError(
                403,
                "Forbidden",
                f'pods "{pod}" is forbidden: error looking up service account '
                f'{namespace}/{name}: serviceaccount "{name}" not found',
                name=pod,
                group="",
                kind="pods",
            )
        if _automount(spec, account):
            _mount_token(spec)
        return []

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> list[str]:
        return []


def _is_mirror(metadata: dict[str, Any]) -> bool:
    return "kubernetes.io/config.mirror" in (metadata.get("annotations") or {})


def _automount(spec: dict[str, Any], account: dict[str, Any]) -> bool:
    """The pod's say first, then the account's; mounted unless one says false."""
    for source in (spec, account):
        value = source.get("automountServiceAccountToken")
        if isinstance(value, bool):
            return value
    return True


def _mount_token(spec: dict[str, Any]) -> None:
    volumes = spec.get("volumes")
    volumes = volumes if isinstance(volumes, list) else []
    existing = next(
        (
            v["name"]
            for v in volumes
            if isinstance(v, dict) and str(v.get("name", "")).startswith(VOLUME_PREFIX)
        ),
        None,
    )
    name = existing or meta.generate_name(VOLUME_PREFIX)
    needed = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts")
            mounts = mounts if isinstance(mounts, list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue  # the container's own mount there wins
            container["volumeMounts"] = [
                *mounts,
                {"name": name, "readOnly": True, "mountPath": MOUNT_PATH},
            ]
            needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, token_volume(name)]
