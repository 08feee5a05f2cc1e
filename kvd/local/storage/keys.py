"""The words of Kubernetes' storage API that kvd's local storage reads and writes."""

from __future__ import annotations

from typing import Any, Final

PROVISIONER: Final = "kvd.io/local"
DEFAULT_CLASS: Final = "local"

IS_DEFAULT_CLASS: Final = "storageclass.kubernetes.io/is-default-class"
BIND_COMPLETED: Final = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER: Final = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY: Final = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE: Final = "volume.kubernetes.io/selected-node"
STORAGE_PROVISIONER: Final = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER: Final = "volume.beta.kubernetes.io/storage-provisioner"
# external-provisioner's: the PV object outlives its data only until the data is gone
PROVISIONER_FINALIZER: Final = "external-provisioner.volume.kubernetes.io/finalizer"
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"

IMMEDIATE: Final = "Immediate"
WAIT_FOR_FIRST_CONSUMER: Final = "WaitForFirstConsumer"


def default_class() -> dict[str, Any]:
    """The local cluster's default StorageClass."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS, "annotations": {IS_DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
        "allowVolumeExpansion": True,
    }


def is_default(storage_class: dict[str, Any]) -> bool:
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return annotations.get(IS_DEFAULT_CLASS) == "true"
