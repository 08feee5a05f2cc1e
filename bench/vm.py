"""A VirtualMachine's start and stop on the whole local cluster; asserts nothing.

    .venv/bin/python bench/vm.py [--runs 5]

Brings up `kvd local up`, creates a stopped VM of the demo guest (`running: false`, grace
period 0), and per run follows its printableStatus with a watch: from `kubectl patch`'s
`running: true` to Starting and Running (and ready), then from `running: false` to Stopping
and Stopped with its VMI gone; and the API writes each half took (the API server's
`apiserver_request_total`, Lease renewals apart). Prints each run and the medians. The VMI path
inside (Scheduling → Running) is bench/controller.py's; this adds what the VM controller costs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fixtures live with the tests

from kubernetes import watch  # noqa: E402

from bench.controller import show, writes  # noqa: E402
from kvd.kube import client  # noqa: E402
from tests.local.node.conftest import Cluster, new_cluster  # noqa: E402

VMS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "running": False,
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
                    "volumes": [{"name": "root", "containerDisk": {"image": "kvd-demo"}}],
                }
            },
        },
    }


class Follow:
    """When the VM first showed each printableStatus (and Ready), from a watch."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        self._watch = watch.Watch()
        api = client.connect(cluster.kubeconfig)
        self._list = client.list_custom(api, "kubevirt.io", "v1", "virtualmachines")
        self._name = name
        threading.Thread(target=self._run, daemon=True).start()
        time.sleep(0.3)  # the watch is open

    def _run(self) -> None:
        try:
            for event in self._watch.stream(
                self._list, field_selector=f"metadata.name={self._name}"
            ):
                status = event["object"].get("status") or {}
                with self.changed:
                    now = time.monotonic()
                    self.seen.setdefault(str(status.get("printableStatus")), now)
                    if status.get("ready"):
                        self.seen.setdefault("ready", now)
                    self.changed.notify_all()
        except Exception:  # the cluster going down ends the watch
            return

    def reset(self) -> None:
        with self.changed:
            self.seen.clear()

    def wait(self, what: str, timeout: float = 120) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: what in self.seen, timeout):
                raise SystemExit(f"{self._name}: no {what} in {timeout} s; seen {self.seen}")

    def stop(self) -> None:
        self._watch.stop()


def one_run(cluster: Cluster, follow: Follow, name: str) -> dict[str, float]:
    times: dict[str, float] = {}
    follow.reset()
    before = writes(cluster)
    start = time.monotonic()
    cluster.raw.merge_patch(f"{VMS}/{name}", {"spec": {"running": True}})
    for what in ("Starting", "Running", "ready"):
        follow.wait(what)
        times[what] = follow.seen[what] - start
    time.sleep(1.0)  # trailing writes (Events, the last status patch)
    print(f"  writes to Running: {show(writes(cluster) - before)}")
    follow.reset()
    before = writes(cluster)
    start = time.monotonic()
    cluster.raw.merge_patch(f"{VMS}/{name}", {"spec": {"running": False}})
    follow.wait("Stopped")
    times["Stopped"] = follow.seen["Stopped"] - start
    while cluster.raw.get(VMIS)["items"]:
        time.sleep(0.05)
    times["VMI gone"] = time.monotonic() - start
    time.sleep(1.0)
    print(f"  writes to Stopped: {show(writes(cluster) - before)}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cluster = new_cluster()
    runs: list[dict[str, float]] = []
    try:
        cluster.up()
        cluster.raw.create(VMS, manifest("bench"))
        follow = Follow(cluster, "bench")
        follow.wait("Stopped")
        print("first start (page cache, image import):")
        one_run(cluster, follow, "bench")
        for i in range(args.runs):
            print(f"run {i + 1}:")
            times = one_run(cluster, follow, "bench")
            runs.append(times)
            print("  " + "  ".join(f"{k} {v:.2f}s" for k, v in times.items()))
        follow.stop()
        print()
        for what in ("Starting", "Running", "ready", "Stopped", "VMI gone"):
            values = [r[what] for r in runs]
            label = "start → " if what in ("Starting", "Running", "ready") else "stop → "
            print(
                f"{label}{what:<9} median {statistics.median(values):.2f}s  "
                f"min {min(values):.2f}s  max {max(values):.2f}s"
            )
        cluster.kubectl("delete", "vm", "bench", timeout=120)
    finally:
        cluster.down()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
