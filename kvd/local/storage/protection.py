"""PVC and PV protection, as kube's pvc-protection and pv-protection controllers.

Kube splits the work in two: the API server's `StorageObjectInUseProtection` admission plugin
puts `kubernetes.io/pvc-protection` on every new claim and `kubernetes.io/pv-protection` on
every new volume (kvd's: `apiserver/persistentvolumes.py`), and these controllers add the
finalizer to objects made before (a restored store) and remove it once deletion is safe:

- a claim being deleted keeps its finalizer while a pod bound to a node that is not finished
  (phase Succeeded or Failed) names it in a `persistentVolumeClaim` volume. Kube's controller
  also waits for finished pods; kvd lets them go, so that a completed importer pod owned by
  its claim does not hold that claim forever. Pods not yet on a node do not count: the
  scheduler refuses a claim being deleted. The cache is asked first, then a live list, so
  a pod the cache has not seen yet still protects the claim.
- a volume being deleted keeps its finalizer while it is `Bound`.

So the PV controller only sees a claim vanish — and reclaims its volume and data — once no
running pod can still write to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Final

from kvd import logs
from kvd.kube import client, informer
from kvd.kube.workqueue import WorkQueue

log = logs.get_logger(__name__)

Json = dict[str, Any]
Key = tuple[str, str]
PVC_PROTECTION: Final = "kubernetes.io/pvc-protection"
PV_PROTECTION: Final = "kubernetes.io/pv-protection"
FINISHED: Final = frozenset({"Succeeded", "Failed"})


def claims_used_by(pod: Json) -> list[str]:
    """The claims a pod holds: none before it is on a node or once it finished."""
    if not (pod.get("spec") or {}).get("nodeName"):
        return []
    if (pod.get("status") or {}).get("phase") in FINISHED:
        return []
    return [
        str(source["claimName"])
        for volume in (pod.get("spec") or {}).get("volumes") or []
        if (source := volume.get("persistentVolumeClaim")) and source.get("claimName")
    ]


def in_use(claim: Json, pods: Iterable[Json]) -> bool:
    meta = claim["metadata"]
    return any(
        pod["metadata"].get("namespace") == meta["namespace"]
        and meta["name"] in claims_used_by(pod)
        for pod in pods
    )


class Protection:
    """Both controllers on one work queue, over the PV controller's claim and volume caches."""

    def __init__(self, api: Any, *, claims: informer.Informer, volumes: informer.Informer) -> None:
        self.raw = client.Raw(api)
        self.claims = claims
        self.volumes = volumes
        core = client.core_v1(api)
        self.pods = informer.Informer(api, core.list_pod_for_all_namespaces, name="pvc-pods")
        self.queue: WorkQueue[Key] = WorkQueue(base_delay=0.2, max_delay=30.0)
        self._thread: threading.Thread | None = None

    def start(self, *, timeout: float) -> None:
        """Call before the claim and volume informers start: their handlers are added here."""
        self.claims.add_handler(lambda _k, c: self.queue.add(("claim", informer.key_of(c))))
        self.volumes.add_handler(lambda _k, v: self.queue.add(("volume", informer.key_of(v))))
        self.pods.add_handler(self._on_pod)
        self.pods.start()
        if not self.pods.wait_synced(timeout):
            raise TimeoutError(f"{self.pods.name} informer did not sync within {timeout}s")
        self._thread = threading.Thread(target=self._work, name="protection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.queue.shutdown()
        self.pods.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _on_pod(self, _kind: str, pod: Json) -> None:
        # Any change may free a claim (finished, deleted), so look at all the pod names.
        namespace = pod["metadata"].get("namespace")
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            source = volume.get("persistentVolumeClaim") or {}
            if source.get("claimName"):
                self.queue.add(("claim", f"{namespace}/{source['claimName']}"))

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self._sync(key)
            except client.ApiError as exc:  # a conflict, mostly: the next pass sees more
                log.info("protection_sync_retried", key=key, error=exc.message)
                self.queue.add_rate_limited(key)
            except Exception as exc:
                log.warning("protection_sync_failed", key=key, error=str(exc), exc_info=True)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)

    def _sync(self, key: Key) -> None:
        kind, name = key
        if kind == "claim":
            claim = self.claims.get(name)
            if claim is not None:
                self._sync_claim(claim)
        else:
            volume = self.volumes.get(name)
            if volume is not None:
                self._sync_volume(volume)

    def _sync_claim(self, claim: Json) -> None:
        meta = claim["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}"
        has = PVC_PROTECTION in (meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp"):
            if not has:
                self._set_finalizer(path, meta, PVC_PROTECTION, add=True)
            return
        if not has or in_use(claim, self.pods.items()):
            return
        live = self.raw.get(f"/api/v1/namespaces/{meta['namespace']}/pods").get("items") or []
        if in_use(claim, live):
            return
        self._set_finalizer(path, meta, PVC_PROTECTION, add=False)
        log.info("claim_unprotected", claim=f"{meta['namespace']}/{meta['name']}")

    def _sync_volume(self, volume: Json) -> None:
        meta = volume["metadata"]
        path = f"/api/v1/persistentvolumes/{meta['name']}"
        has = PV_PROTECTION in (meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp"):
            if not has:
                self._set_finalizer(path, meta, PV_PROTECTION, add=True)
            return
        if has and (volume.get("status") or {}).get("phase") != "Bound":
            self._set_finalizer(path, meta, PV_PROTECTION, add=False)

    def _set_finalizer(self, path: str, meta: Json, finalizer: str, *, add: bool) -> None:
        """A merge patch of the whole list, guarded by the cached resourceVersion: a stale
        cache gets a conflict and a retry, never a lost finalizer of someone else's."""
        current = list(meta.get("finalizers") or [])
        wanted = [*current, finalizer] if add else [f for f in current if f != finalizer]
        try:
            self.raw.merge_patch(
                path,
                {
                    "metadata": {
                        "finalizers": wanted or None,
                        "resourceVersion": meta["resourceVersion"],
                    }
                },
            )
        except client.ApiError as exc:
            if not exc.not_found:
                raise
