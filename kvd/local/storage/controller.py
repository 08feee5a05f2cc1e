"""The local cluster's PV controller and provisioner, run by the local node.

Two reconcilers on one work queue, keyed `("claim", ns/name)` and `("volume", name)`, as kube's
`persistentvolume` controller and an external provisioner do it:

- a claim: unbound → bind the best matching volume (`matching`), or, when its class is
  `kvd.io/local`'s, provision one (`backing`) — at once for `Immediate`, once the scheduler has
  annotated `volume.kubernetes.io/selected-node` for `WaitForFirstConsumer` — then bind it
  (PV `claimRef` + phase Bound, claim `volumeName` + `pv.kubernetes.io/bind-completed` + phase
  Bound with the volume's capacity and access modes). A bound claim whose volume vanished is
  `Lost`. A bigger request on an `allowVolumeExpansion` class grows the volume (condition
  `Resizing` meanwhile; a directory or a loop device needs no node-side file system resize).
- a volume: no claimRef → Available; its claim gone → Released, then reclaimed: `Delete`
  removes the data and the PV (only this provisioner's volumes: others end `Failed`, as kube
  has no deleter for them), `Retain` leaves both.

Events carry kube's reasons and messages. Everything is recomputed from the caches; a write
that fails requeues the key with back-off, and a provisioned volume whose PV cannot be created
is removed again, so no data outlives a failure. PVC and PV protection (`protection`) run
beside it on the same caches, so a claim only disappears once no running pod uses it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kvd import logs
from kvd.kube import client, informer
from kvd.kube.events import NORMAL, WARNING
from kvd.kube.workqueue import WorkQueue
from kvd.local.storage import keys, matching
from kvd.local.storage.backing import Backing
from kvd.local.storage.protection import Protection
from kvd.local.storage.provisioning import Provisioner
from kvd.local.storage.reclaim import Reclaimer
from kvd.local.storage.writes import Writes

log = logs.get_logger(__name__)

Json = dict[str, Any]
Key = tuple[str, str]
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"
LOST = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
WAITING = "waiting for first consumer to be created before binding"


class StorageController:
    def __init__(self, api: Any, *, node_name: str, root: Path) -> None:
        self.raw = client.Raw(api)
        self.node_name = node_name
        self.backing = Backing(root)
        self.w = Writes(self.raw)
        core = client.core_v1(api)
        self.claims = informer.Informer(
            api, core.list_persistent_volume_claim_for_all_namespaces, name="pvcs"
        )
        self.volumes = informer.Informer(api, core.list_persistent_volume, name="pvs")
        self.classes = informer.Informer(
            api, client.list_custom(api, "storage.k8s.io", "v1", "storageclasses"), name="scs"
        )
        self.queue: WorkQueue[Key] = WorkQueue(base_delay=0.2, max_delay=30.0)
        self.provisioner = Provisioner(self.w, self.backing, node_name=node_name)
        self.reclaimer = Reclaimer(self.w, self.backing, claims=self.claims.get)
        self.protection = Protection(api, claims=self.claims, volumes=self.volumes)
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> None:
        self.ensure_default_class()
        self.claims.add_handler(self._on_claim)
        self.volumes.add_handler(self._on_volume)
        self.classes.add_handler(lambda _kind, _o: self._requeue_claims())
        self.protection.start(timeout=timeout)
        for inf in (self.classes, self.volumes, self.claims):
            inf.start()
        for inf in (self.classes, self.volumes, self.claims):
            if not inf.wait_synced(timeout):
                raise TimeoutError(f"{inf.name} informer did not sync within {timeout}s")
        for failure in self.backing.attach_all():  # a node restart: devices over the files
            log.warning("volume_not_attached", error=failure)
        self._thread = threading.Thread(target=self._work, name="storage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.protection.stop()
        self.queue.shutdown()
        for inf in (self.classes, self.volumes, self.claims):
            inf.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def ensure_default_class(self) -> None:
        """The default StorageClass `local`, unless something of that name exists (a user's
        edits, or deletion and replacement, are theirs to keep)."""
        try:
            self.raw.get(f"{CLASSES}/{keys.DEFAULT_CLASS}")
        except client.ApiError as exc:
            if not exc.not_found:
                raise
            try:
                self.raw.create(CLASSES, keys.default_class())
            except client.ApiError as exc:
                if not exc.conflict and exc.status != 409:
                    raise

    # --- what the scheduler reads -------------------------------------------------------------

    def claim(self, namespace: str, name: str) -> Json | None:
        return self.claims.get(f"{namespace}/{name}")

    def storage_class(self, name: str) -> Json | None:
        return self.classes.get(name)

    def select_node(self, namespace: str, name: str) -> None:
        """The scheduler's PreBind: this claim is to be provisioned on this node."""
        path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
        self.raw.merge_patch(
            path, {"metadata": {"annotations": {keys.SELECTED_NODE: self.node_name}}}
        )

    # --- handlers -----------------------------------------------------------------------------

    def _on_claim(self, _kind: str, claim: Json) -> None:
        self.queue.add(("claim", informer.key_of(claim)))
        volume = (claim.get("spec") or {}).get("volumeName")
        if volume:  # a claim deleted releases its volume
            self.queue.add(("volume", volume))

    def _on_volume(self, _kind: str, volume: Json) -> None:
        self.queue.add(("volume", informer.key_of(volume)))
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("name") and ref.get("namespace"):
            self.queue.add(("claim", f"{ref['namespace']}/{ref['name']}"))

    def _requeue_claims(self) -> None:
        for claim in self.claims.items():
            if not (claim.get("spec") or {}).get("volumeName"):
                self.queue.add(("claim", informer.key_of(claim)))

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                again = self._sync(key)
            except client.ApiError as exc:  # a conflict, mostly: the next pass sees more
                log.info("storage_sync_retried", key=key, error=exc.message)
                self.queue.add_rate_limited(key)
            except Exception as exc:
                log.warning("storage_sync_failed", key=key, error=str(exc), exc_info=True)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)

    # --- claims -------------------------------------------------------------------------------

    def _sync(self, key: Key) -> float | None:
        kind, name = key
        if kind == "volume":
            volume = self.volumes.get(name)
            if volume is not None:
                self.reclaimer.sync(volume)
            return None
        return self._sync_claim(name)

    def _sync_claim(self, key: str) -> float | None:
        claim = self.claims.get(key)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return None
        if (claim.get("spec") or {}).get("volumeName"):
            return self._sync_bound_claim(claim)
        return self._sync_unbound_claim(claim)

    def _sync_unbound_claim(self, claim: Json) -> float | None:
        class_name = matching.claim_class(claim)
        sc = self.classes.get(class_name) if class_name else None
        delayed = (
            sc is not None
            and sc.get("volumeBindingMode") == keys.WAIT_FOR_FIRST_CONSUMER
            and keys.SELECTED_NODE not in (claim["metadata"].get("annotations") or {})
        )
        volume = matching.find_volume(claim, self.volumes.items())
        if volume is not None and not delayed:
            self.w.bind(claim, volume)
            return None
        self.w.set_claim_phase(claim, "Pending")
        if not class_name:
            self.w.event(claim, NORMAL, "FailedBinding", NO_CLASS)
            return None
        if sc is None:
            message = f'storageclass.storage.k8s.io "{class_name}" not found'
            self.w.event(claim, WARNING, "ProvisioningFailed", message)
            return None
        if delayed:
            self.w.event(claim, NORMAL, "WaitForFirstConsumer", WAITING)
            return None
        provisioner = str(sc.get("provisioner") or "")
        self.w.annotate_provisioner(claim, provisioner)
        self.w.event(
            claim,
            NORMAL,
            "ExternalProvisioning",
            f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation is "
            "delayed, please verify that the provisioner is running and correctly registered.",
        )
        if provisioner != keys.PROVISIONER:
            return None
        volume = self.provisioner.provision(claim, sc)
        self.w.bind(claim, volume)
        return None

    def _sync_bound_claim(self, claim: Json) -> float | None:
        name = claim["spec"]["volumeName"]
        volume = self.volumes.get(name) or self.w.fresh_volume(name)
        annotations = claim["metadata"].get("annotations") or {}
        if volume is None:
            if annotations.get(keys.BIND_COMPLETED):
                self.w.set_claim_phase(claim, "Lost")
                self.w.event(claim, WARNING, "ClaimLost", LOST)
            else:
                self.w.set_claim_phase(claim, "Pending")
            return None
        ref = (volume.get("spec") or {}).get("claimRef")
        uid = claim["metadata"]["uid"]
        if ref and not matching.claim_ref_matches(volume, claim):
            if annotations.get(keys.BIND_COMPLETED):
                self.w.set_claim_phase(claim, "Lost")
                self.w.event(
                    claim,
                    WARNING,
                    "ClaimMisbound",
                    "Two claims are bound to the same volume, this one is bound incorrectly",
                )
            else:
                self.w.event(
                    claim,
                    WARNING,
                    "FailedBinding",
                    f'volume "{name}" already bound to a different claim.',
                )
            return None
        if not ref or ref.get("uid") != uid:
            why = matching.why_not(volume, claim)
            if why is not None:
                self.w.set_claim_phase(claim, "Pending")
                self.w.event(
                    claim,
                    WARNING,
                    "FailedBinding",
                    f'Cannot bind to requested volume "{name}": {why}',
                )
                return None
        self.w.bind(claim, volume)
        self.provisioner.expand(claim, volume, self.classes.get(matching.claim_class(claim)))
        return None
