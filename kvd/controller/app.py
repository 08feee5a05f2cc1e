"""The controller process: informers, leader election, the VMI work queue and the node watchdog,
and the VM and VMIRS controllers (`workloads`).

Every replica keeps its caches warm (VMIs, launcher pods, nodes, the kvd ConfigMap, VMs, VMIRSs,
claims); only the one holding the `kvd-controller` Lease works. On winning it enqueues every
VMI, VM and VMIRS and starts its workers and the watchdog; on losing it stops taking work at
once, and the process exits (as KubeVirt's virt-controller does) so that a fresh start
campaigns again from a clean state.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvd import logs, metrics
from kvd.api import keys, kinds
from kvd.controller import cached
from kvd.controller import config as clusterconfig
from kvd.controller.vmi import VMIController, VMIControllerSettings
from kvd.controller.watchdog import NodeWatchdog
from kvd.controller.workloads import Workloads
from kvd.kube import events, informer, leader, workqueue
from kvd.kube.client import Raw, connect, core_v1, list_custom
from kvd.kube.workqueue import WorkQueue

log = logs.get_logger(__name__)

Json = dict[str, Any]
COMPONENT = "kvd-controller"
LEASE = "kvd-controller"


@dataclass(frozen=True, kw_only=True)
class ControllerSettings:
    namespace: str  # kvd's: its Lease and ConfigMap
    launcher_host_dir: str  # the handlers' --launcher-dir
    kubeconfig: Path | None = None
    identity: str = ""  # "" = host name + pid
    workers: int = 2
    node_heartbeat_timeout: float = 300.0
    watchdog_period: float = 30.0
    resync_seconds: float = 300.0
    lease_seconds: float = 15.0
    renew_seconds: float = 10.0
    retry_seconds: float = 2.0


class Controller:
    def __init__(self, settings: ControllerSettings) -> None:
        self.settings = settings
        self.identity = settings.identity or f"{socket.gethostname()}_{os.getpid()}"
        self.api = connect(settings.kubeconfig, agent="kvd-controller")
        self.raw = Raw(self.api)
        core = core_v1(self.api)
        self.queue: WorkQueue[str] = WorkQueue()
        self.metrics = metrics.DaemonMetrics("controller")
        self.vmis = informer.Informer(
            self.api,
            list_custom(self.api, kinds.GROUP, kinds.STORAGE_VERSION, kinds.VMI.plural),
            name="vmis",
            resync_period=settings.resync_seconds,
            transform=cached.default,
        )
        self.pods = informer.Informer(
            self.api,
            core.list_pod_for_all_namespaces,
            name="launcher-pods",
            label_selector=keys.LAUNCHER_SELECTOR,
            transform=cached.launcher_pod,
        )
        self.nodes = informer.Informer(
            self.api, core.list_node, name="nodes", transform=cached.default
        )
        self.configmaps = informer.Informer(
            self.api,
            core.list_namespaced_config_map,
            name="config",
            namespace=settings.namespace,
            field_selector=f"metadata.name={clusterconfig.NAME}",
        )
        recorder = events.Recorder(raw=self.raw, component=COMPONENT)
        self.vmi = VMIController(
            raw=self.raw,
            vmis=self.vmis,
            pods=self.pods,
            recorder=recorder,
            settings=VMIControllerSettings(
                launcher_host_dir=settings.launcher_host_dir, config=self.config
            ),
        )
        self.watchdog = NodeWatchdog(
            raw=self.raw,
            nodes=self.nodes,
            vmis=self.vmis,
            pods_of=self.vmi.pods_of,
            recorder=recorder,
            threshold=settings.node_heartbeat_timeout,
        )
        self.elector = leader.LeaderElector(
            self.api,
            namespace=settings.namespace,
            name=LEASE,
            identity=self.identity,
            on_started=self._lead,
            on_stopped=self._lose,
            lease_seconds=settings.lease_seconds,
            renew_seconds=settings.renew_seconds,
            retry_seconds=settings.retry_seconds,
        )
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._leading = threading.Event()
        self.workloads = Workloads(  # VMs and VMIRSs
            self.api,
            self.raw,
            vmis=self.vmis,
            recorder=recorder,
            metrics=self.metrics,
            leading=self._leading.is_set,
            resync_seconds=settings.resync_seconds,
        )
        self._threads: list[threading.Thread] = []
        self._config_seen: tuple[str, clusterconfig.ClusterConfig] | None = None
        self._config_lock = threading.Lock()
        self.metrics.track_queue(lambda: len(self.queue) + self.workloads.depth())
        self.metrics.track_phases(lambda: self.vmis.project(metrics.phase_of))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> None:
        """Sync the caches, then campaign; returns at once (`leading` says when it leads)."""
        self.vmis.add_handler(lambda kind, obj: self.vmi.on_vmi(kind, obj, self._enqueue))
        self.pods.add_handler(lambda kind, obj: self.vmi.on_pod(kind, obj, self._enqueue))
        # Parsed (and its problems logged) as soon as the ConfigMap changes, not only when the
        # next pod is rendered: whoever edits it sees at once what kvd made of it.
        self.configmaps.add_handler(self._config_changed)
        self.workloads.watch()
        for inf in self._informers:
            inf.start()
        for inf in self._informers:
            if not inf.wait_synced(timeout):
                raise TimeoutError(f"the {inf.name} informer did not sync within {timeout}s")
        self.elector.start()

    @property
    def _informers(self) -> tuple[informer.Informer, ...]:
        return (self.vmis, self.pods, self.nodes, self.configmaps, *self.workloads.informers)

    @property
    def leading(self) -> threading.Event:
        return self._leading

    def stop(self) -> None:
        """Stop working, then give the Lease up (a leader only): its successor leads at once
        rather than after the lease duration, and never while this one still works."""
        self._stop.set()
        self.elector.stop()
        self.queue.shutdown()
        self.workloads.shutdown()
        for inf in self._informers:
            inf.stop()
        for t in self._threads:
            t.join(timeout=10)
        self.elector.release()

    def _lead(self) -> None:
        log.info("leading", identity=self.identity)
        self._leading.set()
        for _ in range(self.settings.workers):
            self._spawn(self._work, "worker")
        self._spawn(self._watch_nodes, "watchdog")
        for vmi in self.vmis.items():
            self.queue.add(informer.key_of(vmi))
        self.workloads.lead(self._spawn, self.settings.workers)

    def _lose(self) -> None:
        """Stop taking work at once; the process exits (main waits on `lost`)."""
        log.error("leadership_lost", identity=self.identity)
        self._leading.clear()
        self.queue.shutdown()
        self.workloads.shutdown()
        self.lost.set()

    def _enqueue(self, key: str) -> None:
        if self._leading.is_set():
            self.queue.add(key)

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _work(self) -> None:
        workqueue.work(self.queue, self._reconcile, metrics=self.metrics, log_key="vmi")

    def _reconcile(self, key: str) -> float | None:
        if not self._leading.is_set():
            return None  # lost the lease: not one more write
        return self.vmi.reconcile(key)

    def _watch_nodes(self) -> None:
        period = min(self.settings.watchdog_period, self.settings.node_heartbeat_timeout / 3)
        while not self._stop.wait(period):
            if self._leading.is_set():
                self.watchdog.check(time.time())

    # --- configuration ------------------------------------------------------------------------

    def _config_changed(self, kind: str, obj: Json) -> None:
        self.config()

    def config(self) -> clusterconfig.ClusterConfig:
        """The cluster's settings now, from the ConfigMap in the informer's cache."""
        found = self.configmaps.get(f"{self.settings.namespace}/{clusterconfig.NAME}")
        version = (found or {}).get("metadata", {}).get("resourceVersion", "")
        with self._config_lock:
            if self._config_seen is not None and self._config_seen[0] == version:
                return self._config_seen[1]
            parsed, problems = clusterconfig.parse((found or {}).get("data"))
            for problem in problems:
                log.warning("config_invalid", configmap=clusterconfig.NAME, problem=problem)
            if found is not None:
                log.info("config_loaded", resource_version=version, config=str(parsed))
            self._config_seen = (version, parsed)
            return parsed
