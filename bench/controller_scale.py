"""The controller at scale: N VMIs (default 2,000) against the real API server and controller, the
node played by this script; asserts nothing (issue 20).

    flock /tmp/kvd-heavy.lock .venv/bin/python bench/controller_scale.py [-n 2000]
        [--tracemalloc] [--json out.json]

`kvd local up` in its own data dir, then the local node and the handler are stopped (SIGTERM: the
node leaves its pods, and there are none): no launcher ever runs. A stand-in Node (`standin-…`,
`kubevirt.io/schedulable=true`, no handler heartbeat, so the node watchdog never judges it) gets
every launcher pod: this script watches launcher pods and, as a scheduler and a kubelet would,
binds each to it (`pods/binding`) and marks it Running and Ready (`pods/status`), which is all
the controller waits for to take a VMI to `Scheduled`, where its part ends.

Measured:
- the controller's RSS before any VMI and once all N are Scheduled (after a pause for its
  caches to settle): (after - before) / N is its memory per VMI (goal: <= 20 KB at 2,000);
- reconciles per second while the N VMIs were created and taken to Scheduled (the controller's
  own `kvd_controller_reconcile_duration_seconds_count`, all outcomes), and the time from the
  first create until all N are Scheduled;
- after `kill -9` of the controller and a new one started with the same arguments: the time
  until it leads (its `leader_elected` log line; the dead one's Lease must expire first), and
  until it has reconciled every VMI once with an empty queue;
- with `--tracemalloc`, once more killed and restarted under tracemalloc (slower, so measured
  apart): the allocations alive once it has converged, against a snapshot taken after its imports,
  grouped by source line: what holds the memory.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the cluster helper lives with the tests

from kubernetes import watch  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench import measures  # noqa: E402
from kvd.kube import client  # noqa: E402
from tests.local.node.conftest import Cluster, new_cluster  # noqa: E402

Json = dict[str, Any]
NS = "default"
VMIS = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachineinstances"
PODS = f"/api/v1/namespaces/{NS}/pods"
WORKERS = 4
# Seconds between two scrapes of the controller's metrics. Not less: each scrape counts the VMIs
# per phase over a deep copy of its whole VMI cache (kvd.metrics.track_phases over
# Informer.items()), which at 2,000 VMIs costs the controller real CPU. Times are +-SCRAPE.
SCRAPE = 2.0

# Run as `python -c TRACED <snapshot dir> <argv of kvd>`: the controller under tracemalloc, a
# snapshot once its modules are imported, another whenever `<dir>/take` appears.
TRACED = """
import sys, threading, time, tracemalloc, pathlib
out = pathlib.Path(sys.argv[1])
tracemalloc.start(1)
import kvd.cli.kvd, kvd.controller.main, kvd.controller.app
tracemalloc.take_snapshot().dump(str(out / "base.snap"))
def watcher():
    while True:
        if (out / "take").exists():
            (out / "take").unlink()
            tracemalloc.take_snapshot().dump(str(out / "after.snap"))
            (out / "taken").touch()
        time.sleep(0.2)
threading.Thread(target=watcher, daemon=True).start()
sys.exit(kvd.cli.kvd.main(sys.argv[2:]))
"""


def vmi(name: str) -> Json:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "labels": {"kvd-bench": "scale"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "domain": {
                "resources": {"requests": {"memory": "64Mi"}},
                "devices": {"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}]},
            },
            "volumes": [{"name": "containerdisk", "containerDisk": {"image": "kvd-demo"}}],
        },
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"process {pid} has no VmRSS (gone?)")


class StandIn:
    """The node: binds every launcher pod to the stand-in Node and marks it Running."""

    def __init__(self, api: Any, node: str) -> None:
        self.raw = client.Raw(api)
        self.api = api
        self.node = node
        self.todo: queue.Queue[tuple[str, str]] = queue.Queue()
        self.done = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._watch = watch.Watch()
        self._seen: set[str] = set()
        self.started = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._follow, daemon=True).start()
        for _ in range(WORKERS):
            threading.Thread(target=self._work, daemon=True).start()
        if not self.started.wait(30):
            raise SystemExit("the stand-in node's pod watch did not start in 30 s")

    def _follow(self) -> None:
        core = client.core_v1(self.api)
        while True:
            try:
                listed = core.list_namespaced_pod(NS, label_selector="kubevirt.io=virt-launcher")
                for pod in listed.items:
                    self._saw(client.to_json(self.api, pod))
                self.started.set()
                for event in self._watch.stream(
                    core.list_namespaced_pod,
                    NS,
                    label_selector="kubevirt.io=virt-launcher",
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=3600,
                ):
                    self._saw(client.to_json(self.api, event["object"]))
                return
            except Exception as exc:
                if getattr(self._watch, "_stop", False):
                    return
                print(f"  (pod watch dropped: {exc}; watching again)", flush=True)
                time.sleep(0.5)

    def _saw(self, pod: Json) -> None:
        meta = pod["metadata"]
        if (pod.get("spec") or {}).get("nodeName") or meta.get("deletionTimestamp"):
            return
        if meta["uid"] in self._seen:
            return
        self._seen.add(meta["uid"])
        self.todo.put((meta["name"], meta["uid"]))

    def _work(self) -> None:
        while True:
            name, uid = self.todo.get()
            try:
                self._run(name, uid)
                with self._lock:
                    self.done += 1
            except client.ApiError as exc:
                self.errors.append(f"{name}: {exc.status} {exc.message}")

    def _run(self, name: str, uid: str) -> None:
        self.raw.create(
            f"{PODS}/{name}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name, "uid": uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
            },
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        running = {"running": {"startedAt": now}}
        self.raw.merge_patch(
            f"{PODS}/{name}/status",
            {
                "metadata": {"uid": uid},
                "status": {
                    "phase": "Running",
                    "podIP": "10.250.0.1",
                    "startTime": now,
                    "conditions": [
                        {"type": t, "status": "True", "lastTransitionTime": now}
                        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                    ],
                    "containerStatuses": [
                        {
                            "name": c,
                            "ready": True,
                            "restartCount": 0,
                            "state": running,
                            "image": "kvd",
                            "imageID": "",
                            "started": True,
                        }
                        for c in ("compute", "guest-console-log")
                    ],
                },
            },
        )

    def stop(self) -> None:
        self._watch.stop()


class Controller:
    """The controller process: its metrics, killing it, starting it again as it was."""

    def __init__(self, cluster: Cluster, pid: int) -> None:
        self.cluster = cluster
        self.pid = pid
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        self.env = dict(
            (k.decode(), v.decode())
            for k, _, v in (
                e.partition(b"=")
                for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if e
            )
        )
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cluster.data_dir / "logs" / "controller-restarted.log"
        self.address_file = cluster.data_dir / "controller" / "address.json"

    def metrics(self) -> dict[str, float]:
        """The controller's reconcile count, queue depth and VMIs per phase."""
        found = json.loads(self.address_file.read_text())
        if found["pid"] != self.pid:
            raise FileNotFoundError("the address file is an earlier controller's")
        url = f"http://{found['addresses']['metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out: dict[str, float] = {"reconciles": 0.0}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "kvd_controller_reconcile_duration_seconds_count":
                    out["reconciles"] += s.value
                elif s.name == "kvd_controller_workqueue_depth":
                    out["depth"] = s.value
                elif s.name == "kvd_controller_vmis":
                    out[f"phase:{s.labels.get('phase', '')}"] = s.value
        return out

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        else:
            deadline = time.monotonic() + 30
            while Path(f"/proc/{self.pid}").exists():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.pid, os.WNOHANG)
                stat = (
                    Path(f"/proc/{self.pid}/stat").read_text()
                    if Path(f"/proc/{self.pid}/stat").exists()
                    else ""
                )
                if stat.rpartition(") ")[2].startswith("Z") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)

    def start(self, *, traced: Path | None = None) -> None:
        argv = [a.decode() for a in self.argv]
        if traced is not None:  # python -c TRACED DIR controller <its args>
            argv = [sys.executable, "-c", TRACED, str(traced), *argv[argv.index("controller") :]]
        log = open(self.log, "ab")  # noqa: SIM115 - the child holds it; closed below
        try:
            self.proc = subprocess.Popen(
                argv, cwd=self.cwd, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        finally:
            log.close()
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def wait_converged(self, n: int, timeout: float) -> dict[str, float]:
        """Since its start: until it leads, and until it has reconciled >= n keys, queue empty."""
        began = time.monotonic()
        led: float | None = None
        offset = self.log.stat().st_size if self.log.exists() else 0
        while time.monotonic() - began < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"the restarted controller exited:\n{tail}")
            if led is None and self.log.exists():
                with open(self.log, "rb") as f:
                    f.seek(offset)
                    if b"leader_elected" in f.read():
                        led = time.monotonic() - began
            with contextlib.suppress(OSError, ValueError, KeyError):
                m = self.metrics()
                if m["reconciles"] >= n and m.get("depth", 1) == 0:
                    return {
                        "leader_s": led if led is not None else float("nan"),
                        "converged_s": time.monotonic() - began,
                        "reconciles": m["reconciles"],
                    }
            time.sleep(SCRAPE)
        raise SystemExit(f"the restarted controller did not converge in {timeout:.0f}s")


def wait_scheduled(ctl: Controller, n: int, timeout: float) -> dict[str, float]:
    began = time.monotonic()
    last: dict[str, float] = {}
    while time.monotonic() - began < timeout:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = ctl.metrics()
            if last.get("phase:Scheduled", 0) >= n and last.get("depth", 1) == 0:
                return last
        time.sleep(SCRAPE)
    raise SystemExit(f"not all {n} VMIs Scheduled in {timeout:.0f}s: {last}")


def tracemalloc_top(snapshots: Path, limit: int) -> list[tuple[str, float, int]]:
    """What the controller allocated between the two snapshots and still holds, by the line that
    allocated it (one frame per allocation: more made the traced controller too slow)."""
    import tracemalloc  # noqa: PLC0415

    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    base = tracemalloc.Snapshot.load(str(snapshots / "base.snap")).filter_traces(keep)
    after = tracemalloc.Snapshot.load(str(snapshots / "after.snap")).filter_traces(keep)
    return [
        (
            f"{s.traceback[0].filename.replace(str(REPO) + '/', '')}:{s.traceback[0].lineno}",
            s.size_diff / 1024,
            s.count_diff,
        )
        for s in after.compare_to(base, "lineno")[:limit]
    ]


def main() -> int:  # noqa: PLR0915 - one run, step by step, reads best in order
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on each wait (s)")
    parser.add_argument("--tracemalloc", action="store_true", help="also a traced restart")
    parser.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="VMIs taken to Scheduled before RSS is first read (lazy imports)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cluster = new_cluster()
    out: Json = {"n": args.n}
    ctl: Controller | None = None
    stand_in: StandIn | None = None
    try:
        cluster.up()
        pids = cluster.components()
        for name in ("node", "handler"):  # no launcher may ever run; the script is the node
            os.kill(pids[name], signal.SIGTERM)
        api = client.connect(cluster.kubeconfig, agent="kvd-bench-scale")
        raw = client.Raw(api)
        node = f"standin-{cluster.node_name}"
        raw.create(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node, "labels": {"kubevirt.io/schedulable": "true"}},
            },
        )
        stand_in = StandIn(api, node)
        stand_in.start()
        ctl = Controller(cluster, pids["controller"])
        if args.warmup:  # the first VMIs import what the controller imports lazily
            for i in range(args.warmup):
                raw.create(VMIS, vmi(f"warmup-{i:03d}"))
            wait_scheduled(ctl, args.warmup, args.timeout)
        time.sleep(3.0)  # its start-up settles
        rss_before = rss_kib(ctl.pid)
        before = ctl.metrics()
        out["load_before"] = Path("/proc/loadavg").read_text().split()[:3]
        print(
            f"controller pid {ctl.pid}: RSS {rss_before / 1024:.1f} MiB before any VMI; "
            f"load {' '.join(out['load_before'])}",
            flush=True,
        )
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda i: raw.create(VMIS, vmi(f"scale-{i:05d}")), range(args.n)))
        created_s = time.monotonic() - began
        print(f"created {args.n} VMIs in {created_s:.1f}s ({args.n / created_s:.0f}/s)", flush=True)
        total = args.n + args.warmup
        after = wait_scheduled(ctl, total, args.timeout)
        scheduled_s = time.monotonic() - began
        reconciles = after["reconciles"] - before["reconciles"]
        print(
            f"all {args.n} Scheduled {scheduled_s:.1f}s after the first create; "
            f"{reconciles:.0f} reconciles, {reconciles / scheduled_s:.0f}/s; "
            f"stand-in node: {stand_in.done} pods run, {len(stand_in.errors)} errors",
            flush=True,
        )
        one = raw.get(f"{VMIS}/scale-00000")
        pod = raw.get(PODS, {"labelSelector": f"kubevirt.io/created-by={one['metadata']['uid']}"})
        sizes = {
            "vmi": measures.deep_size(one),
            "pod": measures.deep_size(pod["items"][0]),
            "vmi_json": len(json.dumps(one)),
            "pod_json": len(json.dumps(pod["items"][0])),
        }
        print(
            f"one cached VMI as decoded JSON: {sizes['vmi'] / 1024:.1f} KiB "
            f"({sizes['vmi_json']} B on the wire); its pod: {sizes['pod'] / 1024:.1f} KiB "
            f"({sizes['pod_json']} B)",
            flush=True,
        )
        out["object_bytes"] = sizes
        time.sleep(10.0)  # the caches and the allocator settle
        rss_after = rss_kib(ctl.pid)
        per_vmi = (rss_after - rss_before) * 1024 / args.n
        print(
            f"controller RSS {rss_after / 1024:.1f} MiB with {args.n} VMIs: "
            f"{per_vmi / 1024:.1f} KiB per VMI (goal <= 20 KB)",
            flush=True,
        )
        out |= {
            "created_s": created_s,
            "scheduled_s": scheduled_s,
            "reconciles": reconciles,
            "reconciles_per_s": reconciles / scheduled_s,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "rss_per_vmi_bytes": per_vmi,
            "standin_errors": stand_in.errors[:20],
        }

        ctl.kill()
        ctl.start()
        restart = ctl.wait_converged(total, args.timeout)
        rss_restarted = rss_kib(ctl.pid)
        print(
            f"after kill -9: leader in {restart['leader_s']:.1f}s, every VMI reconciled in "
            f"{restart['converged_s']:.1f}s ({restart['reconciles']:.0f} reconciles); RSS "
            f"{rss_restarted / 1024:.1f} MiB",
            flush=True,
        )
        out["restart"] = restart | {"rss_kib": rss_restarted}

        if args.tracemalloc:
            snapshots = cluster.data_dir / "tracemalloc"
            snapshots.mkdir()
            ctl.kill()
            ctl.start(traced=snapshots)
            traced = ctl.wait_converged(total, args.timeout * 2)
            time.sleep(5.0)
            (snapshots / "take").touch()
            deadline = time.monotonic() + 120
            while not (snapshots / "taken").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            top = tracemalloc_top(snapshots, 25)
            print(
                f"\ntraced restart converged in {traced['converged_s']:.1f}s; what the "
                "controller holds beyond its imports, by the line that allocated it:"
            )
            print(
                measures.table(
                    ("where", "KiB", "per VMI B", "blocks"),
                    [(w, kib, kib * 1024 / total, count) for w, kib, count in top],
                )
            )
            out["tracemalloc_top"] = top
    finally:
        if stand_in is not None:
            stand_in.stop()
        if ctl is not None:
            ctl.stop()
        cluster.down()
        leftovers = cluster.leftovers()
        if leftovers:
            print("left on the host: " + ", ".join(leftovers))
        import shutil  # noqa: PLC0415

        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    out["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average after: {' '.join(out['load_after'])}")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    # SIGTERM (a `timeout`, a CI cancel) ends the run through its `finally`: the cluster goes down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise SystemExit(main())
