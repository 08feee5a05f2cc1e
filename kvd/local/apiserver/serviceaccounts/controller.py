"""What kube-controller-manager puts in every namespace: the `default` ServiceAccount (its
serviceaccount controller) and the `kube-root-ca.crt` ConfigMap (its root-ca-cert-publisher),
whose `ca.crt` is the cluster CA, so pods can verify the API server.

Event-driven from the store, as `namespace_controller`: a namespace appearing (or changing) while
active, the `default` ServiceAccount deleted, or the ConfigMap deleted or changed marks the
namespace for a pass, made once the pending events have been read; a pass over every namespace
at start and every `RECHECK_SECONDS` catches anything else. A pass creates what is missing and
puts back the CA a ConfigMap lost; a namespace being deleted is left alone (its content is on its
way out). `sync(namespace)` is also what admission calls when a pod arrives before the
controller's pass (kube's admission waits for the controller there).
"""

from __future__ import annotations

from typing import Any

from kvd import logs
from kvd.local.apiserver import errors, namespaces
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.store import Event, ResourceKey

log = logs.get_logger(__name__)

RECHECK_SECONDS = 60.0
DEFAULT = "default"
ROOT_CA = "kube-root-ca.crt"
CA_KEY = "ca.crt"
DESCRIPTION = "kubernetes.io/description"
DESCRIPTION_TEXT = (
    "The CA bundle of this cluster's API server, to verify it from inside a pod (at "
    "kubernetes.default.svc or the service IP)."
)
MANAGER = "kube-controller-manager"
SERVICEACCOUNTS = ResourceKey("", "serviceaccounts")
CONFIGMAPS = ResourceKey("", "configmaps")


class ServiceAccountsController:
    def __init__(self, objects: Objects, ca: bytes) -> None:
        self.objects = objects
        self.store = objects.store
        self.ca = ca.decode()

    async def run(self) -> None:
        since = self.store.revision
        dirty = self._all()
        watcher = self.store.watch(None, None, since)
        try:
            while True:
                for name in sorted(dirty):
                    self.sync(name)
                dirty.clear()
                event = await watcher.next(timeout=RECHECK_SECONDS)
                if event is None:
                    dirty = self._all()
                while event is not None:  # read what is pending, then one pass per namespace
                    dirty |= _concerns(event)
                    event = await watcher.next(timeout=0)
        finally:
            watcher.close()

    def _all(self) -> set[str]:
        items, _ = self.store.list(namespaces.KEY, None)
        return {ns["metadata"]["name"] for ns in items}

    def sync(self, namespace: str) -> None:
        """Make `namespace`'s default ServiceAccount and root CA ConfigMap exist, if the
        namespace is active."""
        ns = self.store.get(namespaces.KEY, "", namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        try:
            self._ensure_account(namespace)
            self._ensure_root_ca(namespace)
        except errors.APIError as exc:
            # lost a race (made meanwhile, namespace now terminating): the next event settles it
            log.info("serviceaccounts_sync_skipped", namespace=namespace, error=str(exc))

    def _ensure_account(self, namespace: str) -> None:
        if self.store.get(SERVICEACCOUNTS, namespace, DEFAULT) is not None:
            return
        self._create("serviceaccounts", namespace, {"metadata": {"name": DEFAULT}})
        log.info("serviceaccount_created", namespace=namespace, name=DEFAULT)

    def _ensure_root_ca(self, namespace: str) -> None:
        current = self.store.get(CONFIGMAPS, namespace, ROOT_CA)
        if current is None:
            self._create(
                "configmaps",
                namespace,
                {
                    "metadata": {"name": ROOT_CA, "annotations": {DESCRIPTION: DESCRIPTION_TEXT}},
                    "data": {CA_KEY: self.ca},
                },
            )
            log.info("root_ca_published", namespace=namespace)
            return
        if (current.get("data") or {}).get(CA_KEY) == self.ca and not current.get("binaryData"):
            return
        resource = self.objects.registry.get("", "configmaps")
        assert resource is not None
        updated = {
            **current,
            "data": {**(current.get("data") or {}), CA_KEY: self.ca},
        }
        updated.pop("binaryData", None)
        self.objects.update(
            Target(resource, "v1", namespace, ROOT_CA),
            updated,
            validation="Ignore",
            dry_run=False,
            manager=MANAGER,
        )
        log.info("root_ca_restored", namespace=namespace)

    def _create(self, plural: str, namespace: str, body: dict[str, Any]) -> None:
        resource = self.objects.registry.get("", plural)
        assert resource is not None
        self.objects.create(
            Target(resource, "v1", namespace),
            {"apiVersion": "v1", "kind": resource.kind, **body},
            validation="Strict",
            dry_run=False,
            manager=MANAGER,
        )


def _concerns(event: Event) -> set[str]:
    """The namespaces this event may have left without their default objects."""
    if event.key == namespaces.KEY:
        return set() if event.type == "DELETED" else {event.name}
    if event.key == SERVICEACCOUNTS and event.name == DEFAULT and event.type == "DELETED":
        return {event.namespace}
    if event.key == CONFIGMAPS and event.name == ROOT_CA and event.type != "ADDED":
        return {event.namespace}
    return set()
