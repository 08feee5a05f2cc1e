"""The VirtualMachine, VirtualMachineInstanceReplicaSet and DataVolume controllers, wired into the
controller process: their informers (VMs, replica sets, claims, DataVolumes, importer pods; the
VMI informer is the process's), a work queue each, and the workers that drain them while the
process leads.

`app.Controller` owns one `Workloads`: it starts `informers` with its own, calls `watch` once
they exist, `lead` when it wins the Lease and `shutdown` when it stops or loses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvd.api import datavolume as dvapi
from kvd.api import kinds
from kvd.controller import cached, dvrender
from kvd.controller.datavolume import DataVolumeController
from kvd.controller.replicaset import ReplicaSetController
from kvd.controller.vm import VMController
from kvd.kube import events, informer, workqueue
from kvd.kube.client import Raw, core_v1, list_custom
from kvd.kube.workqueue import WorkQueue
from kvd.metrics import DaemonMetrics, printable_status_of

Spawn = Callable[[Callable[[], None], str], None]


class Workloads:
    def __init__(
        self,
        api: Any,  # the kubernetes ApiClient (only kvd.kube imports kubernetes)
        raw: Raw,
        *,
        vmis: informer.Informer,
        recorder: events.Recorder,
        metrics: DaemonMetrics,
        leading: Callable[[], bool],
        resync_seconds: float,
    ) -> None:
        self.metrics = metrics
        self.leading = leading
        self.vms = informer.Informer(
            api,
            list_custom(api, kinds.GROUP, kinds.STORAGE_VERSION, kinds.VM.plural),
            name="vms",
            resync_period=resync_seconds,
            transform=cached.default,
        )
        self.sets = informer.Informer(
            api,
            list_custom(api, kinds.GROUP, kinds.STORAGE_VERSION, kinds.VMIRS.plural),
            name="vmirs",
            resync_period=resync_seconds,
            transform=cached.default,
        )
        self.claims = informer.Informer(
            api,
            core_v1(api).list_persistent_volume_claim_for_all_namespaces,
            name="claims",
            transform=cached.default,
        )
        self.dvs = informer.Informer(
            api,
            list_custom(api, dvapi.GROUP, dvapi.VERSION, dvapi.PLURAL),
            name="datavolumes",
            resync_period=resync_seconds,
            transform=cached.default,
        )
        self.importers = informer.Informer(
            api,
            core_v1(api).list_pod_for_all_namespaces,
            name="importer-pods",
            label_selector=dvrender.IMPORTER_SELECTOR,
            transform=cached.default,
        )
        self.vmis = vmis
        self.vm = VMController(
            raw=raw,
            vms=self.vms,
            vmis=vmis,
            claims=self.claims,
            recorder=recorder,
            dvs=self.dvs,
        )
        self.datavolume = DataVolumeController(
            raw=raw, dvs=self.dvs, claims=self.claims, pods=self.importers, recorder=recorder
        )
        self.replica_set = ReplicaSetController(
            raw=raw, sets=self.sets, vmis=vmis, recorder=recorder
        )
        self.vm_queue: WorkQueue[str] = WorkQueue()
        self.set_queue: WorkQueue[str] = WorkQueue()
        self.dv_queue: WorkQueue[str] = WorkQueue()
        metrics.track_vm_statuses(lambda: self.vms.project(printable_status_of))

    @property
    def informers(self) -> tuple[informer.Informer, ...]:
        return (self.vms, self.sets, self.claims, self.dvs, self.importers)

    def watch(self) -> None:
        """Route events to the queues (before the informers start)."""
        vm_add, set_add = self._enqueue(self.vm_queue), self._enqueue(self.set_queue)
        dv_add = self._enqueue(self.dv_queue)
        self.dvs.add_handler(lambda kind, obj: self.datavolume.on_dv(kind, obj, dv_add))
        self.dvs.add_handler(lambda kind, obj: self.vm.on_dv(kind, obj, vm_add))
        self.claims.add_handler(lambda kind, obj: self.datavolume.on_owned(kind, obj, dv_add))
        self.importers.add_handler(lambda kind, obj: self.datavolume.on_owned(kind, obj, dv_add))
        self.vms.add_handler(lambda kind, obj: self.vm.on_vm(kind, obj, vm_add))
        self.claims.add_handler(lambda kind, obj: self.vm.on_claim(kind, obj, vm_add))
        self.vmis.add_handler(lambda kind, obj: self.vm.on_vmi(kind, obj, vm_add))
        self.sets.add_handler(lambda kind, obj: self.replica_set.on_set(kind, obj, set_add))
        self.vmis.add_handler(lambda kind, obj: self.replica_set.on_vmi(kind, obj, set_add))

    def lead(self, spawn: Spawn, workers: int) -> None:
        for _ in range(workers):
            spawn(self._vm_worker, "vm-worker")
            spawn(self._set_worker, "vmirs-worker")
            spawn(self._dv_worker, "dv-worker")
        for vm in self.vms.items():
            self.vm_queue.add(informer.key_of(vm))
        for rs in self.sets.items():
            self.set_queue.add(informer.key_of(rs))
        for dv in self.dvs.items():
            self.dv_queue.add(informer.key_of(dv))

    def shutdown(self) -> None:
        self.vm_queue.shutdown()
        self.set_queue.shutdown()
        self.dv_queue.shutdown()

    def depth(self) -> int:
        return len(self.vm_queue) + len(self.set_queue) + len(self.dv_queue)

    def _enqueue(self, queue: WorkQueue[str]) -> Callable[[str], None]:
        def add(key: str) -> None:
            if self.leading():
                queue.add(key)

        return add

    def _vm_worker(self) -> None:
        workqueue.work(
            self.vm_queue, self._guard(self.vm.reconcile), metrics=self.metrics, log_key="vm"
        )

    def _set_worker(self) -> None:
        workqueue.work(
            self.set_queue,
            self._guard(self.replica_set.reconcile),
            metrics=self.metrics,
            log_key="vmirs",
        )

    def _dv_worker(self) -> None:
        workqueue.work(
            self.dv_queue,
            self._guard(self.datavolume.reconcile),
            metrics=self.metrics,
            log_key="dv",
        )

    def _guard(self, reconcile: Callable[[str], float | None]) -> Callable[[str], float | None]:
        def guarded(key: str) -> float | None:
            if not self.leading():
                return None  # lost the lease: not one more write
            return reconcile(key)

        return guarded
