"""The local node: kubelet and scheduler for the embedded API server, on this machine.

Wiring, as a kubelet: register the Node and keep its Lease fresh; three informers (pods bound here,
pods bound nowhere, this Node); one work queue whose keys are `("pod", ns/name)` (reconcile with
`PodWorker`), `("schedule", ns/name)` (bind or report Unschedulable) and `("sweep", "")` (tear down
what runs for a pod whose object is gone); a monitor that notices process exits and enqueues
their pod; a prober; the node API for logs and exec. Handlers only enqueue. Everything it asks of
the API server — pods' service-account tokens (TokenRequests) included — it asks with the
credentials of its kubeconfig.

Start-up adopts: after the informers have synced, a sweep removes what belongs to pods that no
longer exist, and every pod bound here is reconciled against what still runs — nothing is started
twice. Stopping (SIGTERM) leaves pods running, as a kubelet restart does; `teardown()` is the
separate, explicit "remove everything this node runs" of `kvd local down`. Services' cluster
IPs are made reachable here too (`proxy`, kube-proxy's part).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvd import logs
from kvd.kube import client, informer
from kvd.kube.workqueue import WorkQueue
from kvd.local import images
from kvd.local.node import (
    containers,
    kubelet_api,
    network,
    proxy,
    registration,
    scheduler,
    tokens,
)
from kvd.local.node.locator import Locator
from kvd.local.node.podworker import PodWorker
from kvd.local.node.prober import Prober
from kvd.local.node.records import Record, records
from kvd.local.storage import scheduling
from kvd.local.storage.backing import STORAGE_DIR
from kvd.local.storage.controller import StorageController

log = logs.get_logger(__name__)

Json = dict[str, Any]
Key = tuple[str, str]

LEASE_RENEW = 10.0
STATUS_PERIOD = 60.0
MONITOR_PERIOD = 0.1  # our own shims' exits: cheap (a waitpid per shim)
SCAN_PERIOD = 1.0  # every container's status: for shims adopted after a restart
SWEEP_PERIOD = 5.0
UNSCHEDULABLE_RETRY = 5.0


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    kubeconfig: Path
    state_dir: Path
    node_name: str
    network: network.NetworkConfig
    image_store: Path
    kubelet_socket: Path
    cgroup_parent: str = "kvd"
    workers: int = 4


class LocalNode:
    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.name = settings.node_name
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.api = client.connect(settings.kubeconfig, agent="kvd-local-node")
        self.raw = client.Raw(self.api)
        self.net = network.Network(settings.network, settings.state_dir / "network")
        self.runtime = containers.Containers(
            settings.state_dir / "pods", cgroup_parent=settings.cgroup_parent
        )
        self.store = images.ImageStore(settings.image_store)
        self.records = records(settings.state_dir / "records")
        self.queue: WorkQueue[Key] = WorkQueue()
        self.prober = Prober(self._probe_changed)
        self.host_ip = str(next(settings.network.cidr.hosts()))
        self.facts = registration.HostFacts.probe(
            state_dir=settings.state_dir, address=self.host_ip
        )
        core = _core(self.api)
        self.here = informer.Informer(
            self.api,
            core.list_pod_for_all_namespaces,
            name="pods-here",
            field_selector=f"spec.nodeName={self.name}",
            resync_period=300,
        )
        self.pending = informer.Informer(
            self.api,
            core.list_pod_for_all_namespaces,
            name="pods-pending",
            field_selector="spec.nodeName=",
            resync_period=300,
        )
        self.node = informer.Informer(
            self.api, core.list_node, name="node", field_selector=f"metadata.name={self.name}"
        )
        self.worker = PodWorker(
            raw=self.raw,
            node_name=self.name,
            host_ip=self.host_ip,
            net=self.net,
            runtime=self.runtime,
            store=self.store,
            records=self.records,
            prober=self.prober,
            lookup=self._lookup,
            read_pvc=self._read_pvc,
            tokens=tokens.TokenManager(self._request_token),
        )
        self.locator = Locator(pod=self.here.get, runtime=self.runtime)
        self.storage = StorageController(
            self.api, node_name=self.name, root=settings.state_dir / STORAGE_DIR
        )
        self.proxy = proxy.ServiceProxy(
            self.api, bridge=settings.network.bridge, cidr=settings.network.cidr
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._api_server: kubelet_api.BackgroundKubeletAPI | None = None
        self._node_uid: str | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> None:
        # local things first: a bad --data-dir or bridge fails before the Node is registered
        self._api_server = kubelet_api.serve_in_thread(self.settings.kubelet_socket, self.locator)
        self.net.ensure_bridge()
        self._register()
        # a claim's change (bound, say) may let a pending pod be placed
        self.storage.claims.add_handler(lambda _kind, _claim: self._requeue_pending())
        self.storage.start(timeout=timeout)
        self.proxy.start(timeout=timeout)
        self.here.add_handler(self._on_here)
        self.pending.add_handler(self._on_pending)
        self.node.add_handler(self._on_node)
        for inf in (self.node, self.here, self.pending):
            inf.start()
        for inf in (self.node, self.here, self.pending):
            if not inf.wait_synced(timeout):
                raise TimeoutError(f"{inf.name} informer did not sync within {timeout}s")
        self.queue.add(("sweep", ""))
        for pod in self.here.items():
            self.queue.add(("pod", informer.key_of(pod)))
        for i in range(self.settings.workers):
            self._spawn(self._work, f"worker-{i}")
        self._spawn(self._monitor, "monitor")
        self._spawn(self._heartbeat, "heartbeat")
        self.prober.start()
        log.info("node_ready", node=self.name)

    def stop(self) -> None:
        """Stop the node's own threads; pods keep running (a restarted node adopts them)."""
        self._stop.set()
        self.queue.shutdown()
        self.prober.stop()
        self.proxy.stop()
        for inf in (self.node, self.here, self.pending):
            inf.stop()
        self.storage.stop()
        if self._api_server is not None:
            self._api_server.stop()
        for t in self._threads:
            t.join(timeout=10)

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # --- event handlers: enqueue only ---------------------------------------------------------

    def _on_here(self, kind: str, pod: Json) -> None:
        self.queue.add(("pod", informer.key_of(pod)))
        if kind == "DELETED":
            self.queue.add(("sweep", ""))
        if kind == "DELETED" or (pod.get("status") or {}).get("phase") in scheduler.TERMINAL_PHASES:
            self._requeue_pending()  # resources were freed

    def _on_pending(self, kind: str, pod: Json) -> None:
        if kind != "DELETED":
            self.queue.add(("schedule", informer.key_of(pod)))

    def _on_node(self, kind: str, node: Json) -> None:
        self._requeue_pending()  # labels (kubevirt.io/schedulable) may now match

    def _requeue_pending(self) -> None:
        for pod in self.pending.items():
            self.queue.add(("schedule", informer.key_of(pod)))

    def _probe_changed(self, uid: str) -> None:
        record = self.records.get(uid)
        if record is not None:
            self.queue.add(("pod", record.key))

    # --- the work loop ------------------------------------------------------------------------

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                delay = self._handle(key)
            except Exception as exc:
                log.warning("sync_failed", key=key, error=str(exc), exc_info=True)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
                if delay is not None:
                    self.queue.add_after(key, delay)
            finally:
                self.queue.done(key)

    def _handle(self, key: Key) -> float | None:
        kind, name = key
        if kind == "pod":
            pod = self.here.get(name)
            return None if pod is None else self.worker.sync(pod)
        if kind == "schedule":
            return self._schedule(name)
        self._sweep()
        return None

    def _sweep(self) -> None:
        known = self.worker.known_uids()  # before the cache: see agent docstring on ordering
        alive = {p["metadata"]["uid"] for p in self.here.items()}
        for uid in sorted(known - alive):
            log.info("pod_gone", uid=uid)
            self.worker.forget(uid)

    def _schedule(self, key: str) -> float | None:
        pod = self.pending.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName"):
            return None
        if (pod.get("spec") or {}).get("schedulerName", "default-scheduler") != "default-scheduler":
            return None
        if (pod.get("status") or {}).get("phase") in scheduler.TERMINAL_PHASES:
            return None
        node = self.node.get(self.name) or {}
        why = scheduler.unschedulable_reason(pod, node, self.here.items())
        meta = pod["metadata"]
        base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        volumes = scheduling.decide(
            pod, claim=self.storage.claim, storage_class=self.storage.storage_class
        )
        if why is None and volumes.unschedulable is not None:
            why = f"0/1 nodes are available: {volumes.unschedulable}."
        if why is None and not volumes.ready:
            # VolumeBinding's PreBind: the claims are provisioned for this node, and the pod
            # is bound once they are (a claim's change requeues every pending pod)
            for claim in volumes.select:
                self.storage.select_node(meta["namespace"], claim)
            log.info("pod_waits_for_volumes", pod=key, claims=volumes.select + volumes.waiting)
            return UNSCHEDULABLE_RETRY
        if why is None:
            try:
                self.raw.create(
                    f"{base}/binding",
                    {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": meta["name"], "uid": meta["uid"]},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
                    },
                )
            except client.ApiError as exc:
                if exc.status not in (404, 409):
                    raise
            log.info("pod_scheduled", pod=key, node=self.name)
            return None
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": why,
        }
        old = [
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "PodScheduled"
        ]
        if not old or any(old[0].get(k) != v for k, v in condition.items()):
            condition["lastTransitionTime"] = registration.now()
            try:
                self.raw.merge_patch(
                    f"{base}/status",
                    {
                        "metadata": {"uid": meta["uid"]},
                        "status": {"phase": "Pending", "conditions": [condition]},
                    },
                )
            except client.ApiError as exc:
                if not exc.not_found:
                    raise
            log.info("pod_unschedulable", pod=key, reason=why)
        return UNSCHEDULABLE_RETRY

    # --- background loops ---------------------------------------------------------------------

    def _monitor(self) -> None:
        """Notice exits and restarts: enqueue a pod when what the runtime reports of it changes.

        A container this node started ends with its shim, our child: reaping finds it within
        MONITOR_PERIOD. Reading every container's status (files and /proc, for twenty pods
        ~0.1 CPU s a second when done ten times a second) is left to a scan every SCAN_PERIOD,
        for the shims a restarted node adopted and so cannot wait for."""
        last_sweep = last_scan = time.monotonic()
        while not self._stop.wait(MONITOR_PERIOD):
            try:
                exited = self.runtime.reap()
                now = time.monotonic()
                scan = now - last_scan >= SCAN_PERIOD
                if scan:
                    last_scan = now
                for record in self.records.all():
                    if scan or record.uid in exited:
                        self._look(record)
                if now - last_sweep > SWEEP_PERIOD:
                    last_sweep = now
                    self.queue.add(("sweep", ""))
            except Exception as exc:
                log.warning("monitor_failed", error=str(exc))

    def _look(self, record: Record) -> None:
        snapshot = self._snapshot(record)
        if self._seen.get(record.uid) != snapshot:
            self._seen[record.uid] = snapshot
            self.queue.add(("pod", record.key))

    def _snapshot(self, record: Record) -> tuple[Any, ...]:
        out = []
        for name in self.runtime.names(record.uid):
            s = self.runtime.status(record.uid, name)
            if s is not None:
                out.append((name, s.attempt, s.running, s.exit_code))
        return tuple(out)

    def _heartbeat(self) -> None:
        next_status = time.monotonic() + STATUS_PERIOD
        while not self._stop.wait(LEASE_RENEW * random.uniform(0.9, 1.0)):
            try:
                self._renew_lease()
                if time.monotonic() >= next_status:
                    self._update_status(ready=True)
                    next_status = time.monotonic() + STATUS_PERIOD
            except Exception as exc:
                log.warning("heartbeat_failed", error=str(exc))

    # --- API plumbing -------------------------------------------------------------------------

    def _register(self) -> None:
        path = f"/api/v1/nodes/{self.name}"
        try:
            current = self.raw.get(path)
        except client.ApiError as exc:
            if not exc.not_found:
                raise
            current = self.raw.create(
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": self.name, "labels": registration.labels(self.name)},
                },
            )
        else:
            self.raw.merge_patch(path, {"metadata": {"labels": registration.labels(self.name)}})
        self._node_uid = current["metadata"]["uid"]
        self._update_status(ready=True, previous=current.get("status"))
        self._renew_lease()

    def _update_status(self, *, ready: bool, previous: Json | None = None) -> None:
        if previous is None:
            previous = (self.node.get(self.name) or {}).get("status")
        status = registration.node_status(self.facts, ready=ready, previous=previous)
        self.raw.merge_patch(f"/api/v1/nodes/{self.name}/status", {"status": status})

    def _renew_lease(self) -> None:
        body = registration.lease(self.name, uid=self._node_uid, renewed=registration.micro_now())
        path = f"/apis/coordination.k8s.io/v1/namespaces/{registration.LEASE_NAMESPACE}/leases"
        try:
            self.raw.merge_patch(f"{path}/{self.name}", {"spec": body["spec"]})
        except client.ApiError as exc:
            if not exc.not_found:
                raise
            self.raw.create(path, body)

    def _lookup(self, kind: str, namespace: str, name: str) -> Json | None:
        try:
            return self.raw.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except client.ApiError as exc:
            if exc.not_found:
                return None
            raise

    def _request_token(self, namespace: str, account: str, body: Json) -> Json:
        """A TokenRequest, made with the node's own credentials (its kubeconfig)."""
        return self.raw.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body
        )

    def _read_pvc(self, namespace: str, claim: str) -> tuple[Json | None, Json | None]:
        pvc = self._lookup("persistentvolumeclaims", namespace, claim)
        if pvc is None:
            return None, None
        volume = (pvc.get("spec") or {}).get("volumeName")
        if not volume:
            return pvc, None
        try:
            return pvc, self.raw.get(f"/api/v1/persistentvolumes/{volume}")
        except client.ApiError as exc:
            if exc.not_found:
                return pvc, None
            raise


def _core(api: Any) -> Any:
    return client.core_v1(api)
