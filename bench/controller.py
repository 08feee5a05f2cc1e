"""VMI creation → Running on the whole local cluster, and the API writes it takes; asserts nothing.

    .venv/bin/python bench/controller.py [--runs 5]

Brings up `kvd local up` (API server, node, handler, controller) on its own bridge, then per run
POSTs the demo VMI (kvd-demo containerDisk + cloud-init) and follows it with a watch until it is
Running with Ready=True: the time from the POST to Scheduling, Scheduled, Running and Ready.
Then the time until the guest has booted (its console log says KVD-READY), and its memory:
PSS and private (USS) memory of every process in the launcher pod's cgroups, QEMU apart from
the rest (launcher, its libvirtd, the console-log tail, the shims). The rest's private memory
is kvd's overhead per VM once a first VM has the programs' shared pages in memory; its PSS
depends on how many other processes share those pages.
Writes are the API server's own `apiserver_request_total` (`GET /metrics`) before and after,
by verb and resource (refused ones with their code); Lease renewals (node, controller) run on
their own clock and are shown apart. Then the VMI is deleted and the writes of its deletion
counted the same way. Prints each run and the medians.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fixtures live with the tests

import yaml  # noqa: E402
from kubernetes import watch  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from kvd.api import keys  # noqa: E402
from kvd.kube import client  # noqa: E402
from tests.e2e.conftest import vmi_manifest  # noqa: E402
from tests.local.node.conftest import Cluster, new_cluster  # noqa: E402

VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
WRITES = ("create", "update", "patch", "delete", "deletecollection")
Counts = collections.Counter[tuple[str, str]]


def writes(cluster: Cluster) -> Counts:
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    counts: Counts = collections.Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "apiserver_request_total" and s.labels["verb"] in WRITES:
                resource = s.labels["resource"]
                if s.labels["subresource"]:
                    resource += "/" + s.labels["subresource"]
                if not s.labels["code"].startswith("2"):
                    resource += f" ({s.labels['code']})"
                counts[(s.labels["verb"], resource)] += int(s.value)
    return counts


def ready(vmi: dict[str, Any]) -> bool:
    status = vmi.get("status") or {}
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def one_run(
    cluster: Cluster, name: str
) -> tuple[dict[str, float], Counts, Counts, dict[str, float]]:
    api = client.connect(cluster.kubeconfig)
    seen: dict[str, float] = {}
    done = threading.Event()

    def follow(began: list[float]) -> None:
        w = watch.Watch()
        custom = client.list_custom(api, "kubevirt.io", "v1", "virtualmachineinstances")
        for event in w.stream(custom, field_selector=f"metadata.name={name}", timeout_seconds=120):
            vmi = event["object"]
            phase = (vmi.get("status") or {}).get("phase") or "Pending"
            now = time.monotonic()
            seen.setdefault(phase, now)
            if ready(vmi):
                seen.setdefault("Ready", now)
                done.set()
                w.stop()

    began: list[float] = []
    t = threading.Thread(target=follow, args=(began,), daemon=True)
    t.start()
    time.sleep(0.3)  # the watch is open
    before = writes(cluster)
    start = time.monotonic()
    uid = cluster.raw.create(VMIS, yaml.safe_load(vmi_manifest(name, marker=name)))["metadata"][
        "uid"
    ]
    if not done.wait(120):
        raise SystemExit(f"{name}: not Ready in 120 s; seen {seen}")
    times = {k: v - start for k, v in seen.items()}
    time.sleep(1.0)  # let trailing writes (Events, a last status patch) land
    running = writes(cluster) - before
    times["booted"] = wait_booted(cluster, uid) - start
    memory = pod_memory(cluster, uid)
    before = writes(cluster)
    cluster.kubectl("delete", "vmi", name, timeout=120)
    deleted = writes(cluster) - before
    return times, running, deleted, memory


def wait_booted(cluster: Cluster, vmi_uid: str) -> float:
    """When the guest's console says it has booted (cloud-init run, shell up)."""
    pod = cluster.raw.get(
        "/api/v1/namespaces/default/pods", {"labelSelector": f"{keys.CREATED_BY}={vmi_uid}"}
    )["items"][0]["metadata"]["name"]
    deadline = time.monotonic() + 120
    while "KVD-READY" not in cluster.raw.text(
        f"/api/v1/namespaces/default/pods/{pod}/log", {"container": "guest-console-log"}
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"{pod}: the guest did not boot in 120 s")
        time.sleep(0.1)
    return time.monotonic()


def memory_mib(pid: str) -> tuple[float, float]:
    """(PSS, USS) of a process in MiB: its share of every page it maps, and its private pages
    alone, which is what one more VM costs once its programs' shared pages are in memory."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0, 0.0
    fields = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:]}
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Pss", 0) / 1024, private / 1024


def pod_memory(cluster: Cluster, vmi_uid: str) -> dict[str, float]:
    """PSS and USS in MiB of QEMU and of everything else in the pod."""
    pods = cluster.raw.get(
        "/api/v1/namespaces/default/pods", {"labelSelector": f"{keys.CREATED_BY}={vmi_uid}"}
    )["items"]
    root = Path("/sys/fs/cgroup/memory") / cluster.cgroup_parent / pods[0]["metadata"]["uid"]
    pids = {p for f in root.rglob("cgroup.procs") for p in f.read_text().split()}
    total = collections.Counter[str]()
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        who = "qemu" if b"qemu-system" in cmdline else "rest"
        pss, uss = memory_mib(pid)
        total[f"{who}_pss"] += pss
        total[f"{who}_uss"] += uss
    return dict(total)


def show(counts: Counts) -> str:
    per = {k: v for k, v in sorted(counts.items()) if k[1] != "leases"}
    leases = sum(v for k, v in counts.items() if k[1] == "leases")
    body = ", ".join(f"{verb} {resource} {n}" for (verb, resource), n in per.items())
    return f"{body}  (+{leases} lease renewals)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cluster = new_cluster()
    runs: list[dict[str, float]] = []
    overheads: list[float] = []
    try:
        cluster.up()
        # The first VM of a cluster pays for page cache, imports, and a capability cache probe
        # when the host's store has no entry (scripts/setup seeds it): shown, kept out of medians.
        first = one_run(cluster, "warmup")[0]
        print(f"first VM: Running {first.get('Running', float('nan')):.2f}s  booted {first['booted']:.2f}s")
        for i in range(args.runs):
            times, running, deleted, memory = one_run(cluster, f"bench-{i}")
            runs.append(times)
            overheads.append(memory["rest_uss"])
            phases = "  ".join(
                f"{p} {times[p]:.2f}s"
                for p in ("Scheduling", "Scheduled", "Running", "Ready", "booted")
                if p in times
            )
            print(f"run {i + 1}: {phases}")
            print(f"  writes to Running: {show(running)}")
            print(f"  writes to delete:  {show(deleted)}")
            print(
                f"  memory: QEMU PSS {memory['qemu_pss']:.0f} MiB (private "
                f"{memory['qemu_uss']:.0f}), the rest of the pod PSS {memory['rest_pss']:.0f} MiB "
                f"(private {memory['rest_uss']:.0f})"
            )
        print()
        for p in ("Scheduling", "Scheduled", "Running", "Ready", "booted"):
            values = [r[p] for r in runs if p in r]
            if values:
                print(
                    f"creation → {p:<10} median {statistics.median(values):.2f}s  "
                    f"min {min(values):.2f}s  max {max(values):.2f}s"
                )
        print(f"pod memory besides QEMU, private: median {statistics.median(overheads):.0f} MiB")
    finally:
        cluster.down()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
