"""N VMIs created GAP apart on a local cluster, against N bare QEMUs: where the time, memory, CPU
and API requests of a VMI start go; asserts nothing (issue 20).

    flock /tmp/kvd-heavy.lock .venv/bin/python bench/density.py [-n 20] [--gap 0.1]
        [--memory 128Mi] [--json out.json] [--plot timeline.png] [--keep] [--data-dir DIR]

In one run:
1. the physical limit: N bare `qemu-system-x86_64 -accel tcg` of the demo disk, GAP apart, each
   timed to QMP `running` and to its boot marker (bench/bare.py), then killed;
2. `kvd local up` in its own data dir (own bridge, CIDR, cgroup parent), then N minimal VMIs (the
   demo containerDisk, `--memory`, grace 0) POSTed GAP apart, each followed by one watch:
   creation → Scheduling, Scheduled, Running, and → booted (`KVD-READY` in its console log, read
   from the node's run dir so that polling it adds no API request). P50/P95/max of each, and
   kvd/bare for Running;
3. during the ramp: CPU seconds of every component (API server, node, controller, handler, and
   per kind the pods' launchers, libvirtds, virtlogds, console loggers, shims, QEMUs), from
   /proc/PID/stat sampled every second (a process that ends between two samples loses its last
   second); API requests from the audit log (who, verb, resource, code) and
   `apiserver_request_total`, per VMI, with 409s and the writes beyond the VMI and pod creates;
4. once all booted: USS and PSS per pod of each process kind (/proc/PID/smaps_rollup), QEMU apart;
5. VMIs not Running by the deadline are reported by name, phase and reason (conditions, the
   pod's PodScheduled condition, Warning events), never waited for longer;
6. every VMI deleted, then checked that nothing leaked: no VMI, no launcher pod, no run dir, no
   process in the pods' cgroups; after `kvd local down`, the cluster's own leftovers check.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the cluster helper lives with the tests

from kubernetes import watch  # noqa: E402

from bench import bare, measures  # noqa: E402
from kvd.kube import client  # noqa: E402
from tests.local.node.conftest import Cluster, new_cluster  # noqa: E402

Json = dict[str, Any]
NS = "default"
VMIS = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachineinstances"
PODS = f"/api/v1/namespaces/{NS}/pods"
LABEL = "kvd-bench"
PHASES = ("Scheduling", "Scheduled", "Running")
STAGES = (*PHASES, "booted")
COMPONENTS = ("apiserver", "node", "controller", "handler")
TICK = os.sysconf("SC_CLK_TCK")
IMAGE_STORE = Path("/var/lib/kvd/images")
EARLY = {"Pending", "Scheduling"}
STUCK_AFTER = 45.0  # seconds with no VMI moving while only unscheduled ones are left


def demo_image() -> Path:
    """The demo disk the VMIs' containerDisk `kvd-demo` resolves to in the local image store."""
    for manifest in sorted(IMAGE_STORE.glob("*/manifest.json")):
        found = json.loads(manifest.read_text())
        if found.get("reference") == "docker.io/library/kvd-demo:latest":
            return manifest.parent / "rootfs" / next(iter(found["files"]))
    raise SystemExit(f"no kvd-demo image in {IMAGE_STORE}: run scripts/setup")


def memory_mib(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    if not match:
        raise SystemExit(f"--memory {quantity!r}: give it as NMi or NGi")
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def vmi_manifest(name: str, memory: str) -> Json:
    """A minimal VMI: the demo containerDisk alone (no cloud-init: as the bare QEMU boots)."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "labels": {LABEL: "density"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "domain": {
                "resources": {"requests": {"memory": memory}},
                "devices": {"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}]},
            },
            "volumes": [{"name": "containerdisk", "containerDisk": {"image": "kvd-demo"}}],
        },
    }


class Follower:
    """One watch of the bench's VMIs: when each was first seen in each phase, its pod's uid."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.seen: dict[str, dict[str, float]] = collections.defaultdict(dict)
        self.pods: dict[str, str] = {}  # VMI name → launcher pod uid
        self.last: dict[str, Json] = {}
        self.lock = threading.Lock()
        self.started = threading.Event()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.started.wait(30):
            raise SystemExit("the VMI watch did not start in 30 s")

    def _run(self) -> None:
        custom = client.list_custom(self.api, "kubevirt.io", "v1", "virtualmachineinstances")
        while True:
            try:
                listed = custom(label_selector=f"{LABEL}=density")
                version = listed["metadata"]["resourceVersion"]
                self.started.set()
                for event in self._watch.stream(
                    custom,
                    label_selector=f"{LABEL}=density",
                    resource_version=version,
                    timeout_seconds=3600,
                ):
                    self._saw(event["object"])
                return
            except Exception as exc:  # a dropped watch: resume; a stopped one: done
                if getattr(self._watch, "_stop", False):
                    return
                print(f"  (VMI watch dropped: {exc}; watching again)", flush=True)
                time.sleep(0.5)

    def _saw(self, vmi: Json) -> None:
        now = time.monotonic()
        name = vmi["metadata"]["name"]
        status = vmi.get("status") or {}
        with self.lock:
            self.last[name] = vmi
            self.seen[name].setdefault(status.get("phase") or "Pending", now)
            for uid in status.get("activePods") or {}:
                self.pods.setdefault(name, uid)

    def stop(self) -> None:
        self._watch.stop()


def booted_poll(cluster: Cluster, follower: Follower, booted: dict[str, float]) -> None:
    """Mark each VMI booted once its console log (in the node's run dir) has the marker."""
    with follower.lock:
        pods = dict(follower.pods)
    for name, uid in pods.items():
        if name in booted:
            continue
        log = cluster.data_dir / "launchers" / uid / "console.log"
        with contextlib.suppress(OSError):
            if bare.MARKER in log.read_bytes():
                booted[name] = time.monotonic()


def console_tail(cluster: Cluster, uid: str | None) -> list[str]:
    """How far a guest that did not boot got: the end of its console log in the node's run dir."""
    if uid is None:
        return []
    return measures.last_lines(cluster.data_dir / "launchers" / uid / "console.log")


# --- processes -------------------------------------------------------------------------------


def pod_processes(cluster: Cluster, *, launchers_only: bool = True) -> dict[int, tuple[str, str]]:
    """pid → (pod uid, kind) of every process in a pod's memory cgroup: of launcher pods only,
    unless asked (the local cluster also runs kvd's controller and handler as pods)."""
    root = Path("/sys/fs/cgroup/memory") / cluster.cgroup_parent
    found: dict[int, tuple[str, str]] = {}
    for procs in _cgroup_procs(root, depth=3):
        pod_uid = procs.relative_to(root).parts[0]
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                found[int(pid)] = (pod_uid, kind_of(int(pid)))
    if launchers_only:
        daemons = {uid for uid, kind in found.values() if kind in measures.DAEMONS}
        found = {pid: (uid, kind) for pid, (uid, kind) in found.items() if uid not in daemons}
    return found


def _cgroup_procs(root: Path, *, depth: int) -> list[Path]:
    """`root/*/.../cgroup.procs` `depth` levels down; a cgroup removed meanwhile (a pod ending
    during the walk, which Path.glob does not survive) is skipped."""
    level = [root]
    for _ in range(depth):
        below = []
        for d in level:
            with contextlib.suppress(OSError):
                below += [Path(e.path) for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
        level = below
    return [d / "cgroup.procs" for d in level]


def kind_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    return measures.process_kind([a.decode(errors="replace") for a in argv if a])


class CpuSampler:
    """utime+stime of the cluster's processes, sampled every second: the last value seen per
    pid, so a process's CPU counts up to its last sample even once it has ended."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.components = cluster.components()
        self.base: dict[int, int] = {}
        self.last: dict[int, tuple[str, int]] = {}  # pid → (kind, ticks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        kinds = {pid: name for name, pid in self.components.items()}
        kinds.update(
            {
                pid: kind
                for pid, (_, kind) in pod_processes(self.cluster, launchers_only=False).items()
            }
        )
        for pid, kind in kinds.items():
            with contextlib.suppress(OSError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                children = kind in COMPONENTS  # the helpers they run and reap (ip, nft, ...)
                self.last[pid] = (kind, measures.cpu_ticks(stat, children=children))

    def start(self) -> None:
        self.sample()
        self.base = {pid: ticks for pid, (_, ticks) in self.last.items()}
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds per kind since `start`."""
        self._stop.set()
        self._thread.join()
        self.sample()
        used: collections.Counter[str] = collections.Counter()
        for pid, (kind, ticks) in self.last.items():
            used[kind] += (ticks - self.base.get(pid, 0)) / TICK
        return dict(used)


def pod_memory(cluster: Cluster) -> dict[str, dict[str, dict[str, float]]]:
    """{"rss"|"pss"|"uss": {kind: {pod uid: MiB}}} of every pod process."""
    samples: dict[str, list[tuple[str, str, float]]] = {"rss": [], "pss": [], "uss": []}
    for pid, (pod_uid, kind) in pod_processes(cluster).items():
        with contextlib.suppress(OSError, ValueError):
            found = measures.smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
            for field, values in samples.items():
                values.append((pod_uid, kind, getattr(found, field) / 1024))
    return {k: measures.per_kind(v) for k, v in samples.items()}


# --- the API's side ----------------------------------------------------------------------------


def audit_from(path: Path, offset: int) -> list[str]:
    """The audit log's lines written since it was `offset` bytes long (across one rotation)."""
    lines: list[str] = []
    if path.stat().st_size < offset:  # rotated meanwhile: the old file is `.1`
        with open(path.with_name(path.name + ".1"), encoding="utf-8") as f:
            f.seek(offset)
            lines += f.read().splitlines()
        offset = 0
    with open(path, encoding="utf-8") as f:
        f.seek(offset)
        lines += f.read().splitlines()
    return lines


def metrics_requests(raw: client.Raw) -> collections.Counter[str]:
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    counts: collections.Counter[str] = collections.Counter()
    for family in text_string_to_metric_families(raw.text("/metrics")):
        for s in family.samples:
            if s.name == "apiserver_request_total":
                resource = s.labels["resource"]
                if s.labels["subresource"]:
                    resource += "/" + s.labels["subresource"]
                code = s.labels["code"]
                counts[
                    f"{s.labels['verb']} {resource}" + ("" if code[0] == "2" else f" ({code})")
                ] += int(s.value)
    return counts


def why_stuck(raw: client.Raw, name: str, vmi: Json, pod_uid: str | None) -> str:
    """The reasons a VMI is not Running, from where a user would look."""
    status = vmi.get("status") or {}
    said = [
        f"{c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}"
        for c in status.get("conditions") or []
        if c.get("status") != "True" or c.get("reason")
    ]
    with contextlib.suppress(client.ApiError):
        pods = raw.get(PODS, {"labelSelector": f"kubevirt.io/created-by={vmi['metadata']['uid']}"})
        for pod in pods["items"]:
            for c in (pod.get("status") or {}).get("conditions") or []:
                if c.get("type") == "PodScheduled" and c.get("status") != "True":
                    said.append(
                        f"pod {pod['metadata']['name']} PodScheduled=False "
                        f"{c.get('reason', '')}: {c.get('message', '')}"
                    )
    with contextlib.suppress(client.ApiError):
        events = raw.get(f"/api/v1/namespaces/{NS}/events")["items"]
        for e in events:
            involved = e.get("involvedObject") or {}
            if involved.get("name", "").startswith(name) and e.get("type") == "Warning":
                said.append(f"event {involved.get('kind')} {e.get('reason')}: {e.get('message')}")
    del pod_uid
    return "; ".join(dict.fromkeys(said)) or "no condition or event says why"


# --- the run ------------------------------------------------------------------------------------


def ramp(cluster: Cluster, args: argparse.Namespace) -> Json:
    api = client.connect(cluster.kubeconfig, agent="kvd-bench-density")
    raw = client.Raw(api)
    follower = Follower(api)
    follower.start()
    audit_log = cluster.data_dir / "logs" / "audit.log"
    created: dict[str, float] = {}
    booted: dict[str, float] = {}
    names = [f"density-{i:03d}" for i in range(args.n)]
    requests_before = metrics_requests(raw)
    offset = audit_log.stat().st_size
    cpu = CpuSampler(cluster)
    cpu.start()
    began = time.monotonic()
    for i, name in enumerate(names):
        time.sleep(max(0.0, began + i * args.gap - time.monotonic()))
        created[name] = time.monotonic()
        raw.create(VMIS, vmi_manifest(name, args.memory))
    deadline = time.monotonic() + args.timeout
    print(
        f"created {args.n} VMIs in {time.monotonic() - began:.2f}s; waiting up to "
        f"{args.timeout:.0f}s for them to boot",
        flush=True,
    )
    wait_booted(cluster, follower, names, booted, deadline)
    ramp_end = time.monotonic()
    cpu_used = cpu.stop()
    time.sleep(1.0)  # let the last status writes and Events land before counting
    requests = metrics_requests(raw) - requests_before
    audited = measures.parse_audit(audit_from(audit_log, offset))
    memory = pod_memory(cluster)

    with follower.lock:
        seen = {n: dict(s) for n, s in follower.seen.items()}
        last = dict(follower.last)
        pods = dict(follower.pods)
    per_vmi: dict[str, dict[str, float]] = {}
    for name in names:
        times = {p: seen.get(name, {}).get(p, math.nan) - created[name] for p in PHASES}
        times["booted"] = booted.get(name, math.nan) - created[name]
        times["created"] = created[name] - began
        per_vmi[name] = times
    stuck = {}
    for name in names:
        vmi = last.get(name, {"metadata": {"name": name, "uid": ""}})
        phase = (vmi.get("status") or {}).get("phase") or "Pending"
        if name not in booted:
            stuck[name] = {
                "phase": phase,
                "booted": False,
                "why": why_stuck(raw, name, vmi, pods.get(name)),
                "console": console_tail(cluster, pods.get(name)),
            }
    follower.stop()
    leaks = delete_all(cluster, raw, names)
    return {
        "per_vmi": per_vmi,
        "ramp_seconds": ramp_end - began,
        "cpu_seconds": cpu_used,
        "requests": dict(requests),
        "audit": audited,
        "memory": memory,
        "stuck": stuck,
        "leaks": leaks,
    }


def wait_booted(
    cluster: Cluster,
    follower: Follower,
    names: list[str],
    booted: dict[str, float],
    deadline: float,
) -> None:
    """Until every VMI booted or ended, or only unscheduled ones are left and nothing moved for
    STUCK_AFTER seconds (they are stuck: reported, not waited for), or the deadline."""
    progress, moved = time.monotonic(), -1
    while time.monotonic() < deadline:
        booted_poll(cluster, follower, booted)
        with follower.lock:
            ended = {
                n for n, seen in follower.seen.items() if "Failed" in seen or "Succeeded" in seen
            }
            steps = sum(len(s) for s in follower.seen.values()) + len(booted)
            waiting = {
                n
                for n in names
                if n not in booted and n not in ended and set(follower.seen.get(n, {})) <= EARLY
            }
        if len(booted) + len(ended - set(booted)) >= len(names):
            break
        if steps != moved:
            progress, moved = time.monotonic(), steps
        # Only unscheduled ones left, and nothing has moved for a while: they are stuck.
        stalled = time.monotonic() - progress > STUCK_AFTER
        if waiting and stalled and len(booted) + len(ended) + len(waiting) >= len(names):
            print(
                f"{len(waiting)} VMI(s) still not scheduled after {STUCK_AFTER:.0f}s "
                "without progress: reporting them as stuck",
                flush=True,
            )
            break
        time.sleep(0.1)


def delete_all(cluster: Cluster, raw: client.Raw, names: list[str]) -> list[str]:
    """Delete the VMIs; wait (bounded) until their pods, run dirs and processes are gone; what is
    left then is a leak."""
    for name in names:
        with contextlib.suppress(client.ApiError):
            raw.delete(f"{VMIS}/{name}")
    run_dirs = cluster.data_dir / "launchers"

    def left() -> list[str]:
        found = [f"VMI {v['metadata']['name']}" for v in raw.get(VMIS)["items"]]
        found += [
            f"pod {p['metadata']['name']} ({(p.get('status') or {}).get('phase')})"
            for p in raw.get(PODS, {"labelSelector": "kubevirt.io=virt-launcher"})["items"]
        ]
        found += [f"run dir {d}" for d in run_dirs.glob("*") if d.is_dir()]
        found += [
            f"process {pid} ({kind}) of pod {uid}"
            for pid, (uid, kind) in pod_processes(cluster).items()
        ]
        return found

    deadline = time.monotonic() + 120
    while (found := left()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def report(result: Json, bare_vms: list[bare.BareVM], args: argparse.Namespace) -> Json:
    per_vmi = result["per_vmi"]
    n = args.n
    summaries = {
        stage: measures.summarize(t[stage] for t in per_vmi.values() if not math.isnan(t[stage]))
        for stage in STAGES
    }
    bare_running = measures.summarize(v.running for v in bare_vms if v.running is not None)
    bare_booted = measures.summarize(v.booted for v in bare_vms if v.booted is not None)
    rows = [
        (f"creation → {s}", summaries[s].n, summaries[s].p50, summaries[s].p95, summaries[s].max)
        for s in STAGES
    ]
    rows += [
        (
            "bare QEMU → QMP running",
            bare_running.n,
            bare_running.p50,
            bare_running.p95,
            bare_running.max,
        ),
        ("bare QEMU → booted", bare_booted.n, bare_booted.p50, bare_booted.p95, bare_booted.max),
    ]
    ratio = {
        "running_p50": summaries["Running"].p50 / bare_running.p50,
        "running_max": summaries["Running"].max / bare_running.max,
        "booted_p50": summaries["booted"].p50 / bare_booted.p50,
    }
    print()
    print(
        f"{n} VMIs, {args.gap * 1000:.0f} ms apart, {args.memory}; seconds "
        f"(load average before the ramp: {result['load_before']})"
    )
    print(measures.table(("stage", "n", "P50", "P95", "max"), rows))
    print(
        f"kvd/bare: Running P50 {ratio['running_p50']:.1f}x, max {ratio['running_max']:.1f}x; "
        f"booted P50 {ratio['booted_p50']:.1f}x"
    )
    errors = [f"bare {v.index}: {v.error}" for v in bare_vms if v.error]
    for e in errors:
        print("  " + e)

    print("\nper-VM memory, MiB per pod (mean over pods; USS = private, PSS = proportional, RSS =")
    print("shared pages counted in full, as `ps` and KubeVirt's overhead constants count them)")
    memory = result["memory"]
    kinds = sorted(set(memory["uss"]), key=lambda k: (k == "qemu", k))
    fields = ("uss", "pss", "rss")
    mem_rows = [
        (k, len(memory["uss"].get(k, {})), *(measures.mean(memory[f].get(k, {})) for f in fields))
        for k in kinds
    ]
    pods = set().union(*(set(v) for k, v in memory["uss"].items() if k != "qemu"))
    kvd_total = {
        f: {p: sum(v.get(p, 0.0) for k, v in memory[f].items() if k != "qemu") for p in pods}
        for f in fields
    }
    mem_rows.append(
        ("kvd total (all but QEMU)", len(pods), *(measures.mean(kvd_total[f]) for f in fields))
    )
    print(measures.table(("process", "pods", "USS", "PSS", "RSS"), mem_rows))

    print(
        f"\nCPU seconds during the ramp ({result['ramp_seconds']:.1f} s wall, "
        f"{os.cpu_count()} CPUs = {result['ramp_seconds'] * (os.cpu_count() or 1):.0f} CPU-s)"
    )
    cpu = result["cpu_seconds"]
    print(
        measures.table(
            ("component", "CPU s", "per VMI"),
            [(k, v, v / n) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])]
            + [("total", sum(cpu.values()), sum(cpu.values()) / n)],
        )
    )

    counts = measures.tally(result["audit"])
    writes = measures.writes_per_start(counts, n)
    leases = sum(k for (_, _, resource, _), k in counts.items() if resource == "leases")
    print(
        f"\nAPI requests during the ramp, per VMI (audit log; {leases} Lease requests apart: "
        "leader election and node heartbeats run on their own clock)"
    )
    by_who: collections.Counter[tuple[str, str]] = collections.Counter()
    for (who, verb, resource, code), k in counts.items():
        if resource == "leases":
            continue
        label = f"{verb} {resource}" + ("" if 200 <= code < 300 else f" ({code})")
        by_who[(who, label)] += k
    print(
        measures.table(
            ("who", "request", "total", "per VMI"),
            [(who, label, k, k / n) for (who, label), k in sorted(by_who.items())],
        )
    )
    print(
        f"writes per VMI start beyond the VMI and pod creates: {writes.patches:.2f} PATCH, "
        f"{writes.updates_creates:.2f} UPDATE/CREATE (+{writes.events:.2f} Events); "
        f"409s: {sum(writes.conflicts.values())}"
        + (f" {writes.conflicts}" if writes.conflicts else "")
    )
    for who, things in writes.by_component.items():
        print(f"  {who}: " + ", ".join(f"{k} {v:.2f}" for k, v in things.items()))

    if result["stuck"]:
        print(f"\nnot booted by the deadline ({len(result['stuck'])}):")
        for name, s in result["stuck"].items():
            print(f"  {name}: {s['phase']}: {s['why']}")
            for line in s["console"]:
                print(f"    console: {line[:150]}")
    print("\nleaks after deleting every VMI: " + (", ".join(result["leaks"]) or "none"))

    return {
        "n": n,
        "gap_s": args.gap,
        "memory": args.memory,
        "load_before": result["load_before"],
        "stages": {s: summaries[s].as_json() for s in STAGES},
        "bare": {
            "running": bare_running.as_json(),
            "booted": bare_booted.as_json(),
            "errors": errors,
        },
        "ratio": {k: round(v, 2) if not math.isnan(v) else None for k, v in ratio.items()},
        "per_vmi": {
            name: {k: (None if math.isnan(v) else round(v, 3)) for k, v in t.items()}
            for name, t in per_vmi.items()
        },
        "memory_mib": {
            **{f: {k: measures.mean(v) for k, v in memory[f].items()} for f in fields},
            **{f"kvd_{f}": measures.mean(kvd_total[f]) for f in fields},
        },
        "cpu_seconds": cpu,
        "ramp_seconds": result["ramp_seconds"],
        "requests_by_verb_resource": result["requests"],
        "requests_by_component": {f"{w} {lab}": k for (w, lab), k in sorted(by_who.items())},
        "writes_per_start": {
            "patch": writes.patches,
            "update_create": writes.updates_creates,
            "events": writes.events,
            "conflicts": writes.conflicts,
            "by_component": writes.by_component,
        },
        "stuck": result["stuck"],
        "leaks": result["leaks"],
    }


def plot(out: Json, path: Path) -> None:
    try:
        import matplotlib  # noqa: PLC0415 - only when a plot is asked

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[dev]'") from None
    per_vmi = out["per_vmi"]
    names = sorted(per_vmi, key=lambda n: per_vmi[n]["created"])
    fig, ax = pyplot.subplots(figsize=(9, 0.28 * len(names) + 1.6))
    colours = {
        "Scheduling": "#c7c7c7",
        "Scheduled": "#f2b134",
        "Running": "#4e79a7",
        "booted": "#59a14f",
    }
    labelled: set[str] = set()
    for row, name in enumerate(names):
        t = per_vmi[name]
        start = t["created"]
        previous = 0.0
        for stage, next_stage in zip(("created", *PHASES), STAGES, strict=True):
            del stage
            end = t[next_stage]
            if end is None:
                ax.barh(row, 1.5, left=start + previous, color="#e15759", hatch="//")
                break
            label = f"→ {next_stage}" if next_stage not in labelled else None
            labelled.add(next_stage)
            ax.barh(
                row, end - previous, left=start + previous, color=colours[next_stage], label=label
            )
            previous = end
    bare_p50 = out["bare"]["running"]["p50"]
    if bare_p50 is not None:
        ax.axvline(
            bare_p50, color="black", linestyle=":", label=f"bare QEMU running P50 {bare_p50:.2f}s"
        )
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first VMI was created")
    ax.set_title(f"{out['n']} VMIs {out['gap_s'] * 1000:.0f} ms apart: phase timeline")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"plot: {path}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="VMIs (and bare QEMUs) to start")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between two creations")
    parser.add_argument("--memory", default="128Mi", help="each guest's memory (NMi)")
    parser.add_argument(
        "--timeout",  # 20 guests booting at once under TCG take about 2 min
        type=float,
        default=240.0,
        help="seconds to wait for every guest to boot (after the last VMI, after each bare QEMU)",
    )
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--plot", type=Path, help="draw each VMI's phase timeline (PNG)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up")
    parser.add_argument("--data-dir", type=Path, help="the cluster's data dir (default: a tmp one)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare QEMU baseline")
    args = parser.parse_args()
    if args.n < 1 or args.gap < 0:
        parser.error("-n must be at least 1 and --gap not negative")
    if args.plot is not None:  # fail now, not after minutes of work
        try:
            import matplotlib  # noqa: F401, PLC0415
        except ImportError:
            parser.error("--plot needs matplotlib: pip install -e '.[dev]'")
    return args


def main() -> int:
    args = parse_args()
    image = demo_image()
    mib = memory_mib(args.memory)
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average at the start: {load_start}", flush=True)

    bare_vms: list[bare.BareVM] = []
    if not args.no_bare:
        print(
            f"bare: {args.n} x qemu-system-x86_64 -accel tcg of {image.name}, "
            f"{args.gap * 1000:.0f} ms apart",
            flush=True,
        )
        bare_vms = bare.run(image, count=args.n, gap=args.gap, memory_mib=mib, timeout=args.timeout)

    cluster = new_cluster()
    if args.data_dir is not None:
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
        args.data_dir.mkdir(parents=True, exist_ok=True)
        cluster.data_dir = args.data_dir.resolve()
    leftovers: list[str] = []
    try:
        t0 = time.monotonic()
        cluster.up()
        print(f"kvd local up: {time.monotonic() - t0:.1f}s ({cluster.data_dir})", flush=True)
        time.sleep(2.0)  # let the components' start-up writes and lists settle
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        result = ramp(cluster, args)
        result["load_before"] = load
    finally:
        if args.keep:
            print(
                f"\ncluster kept: export KUBECONFIG={cluster.kubeconfig}\n"
                f"  stop it with: kvd local down --data-dir {cluster.data_dir}"
            )
        else:
            cluster.down()
            leftovers = cluster.leftovers()
            if args.data_dir is None:
                shutil.rmtree(cluster.data_dir, ignore_errors=True)
    out = report(result, bare_vms, args)
    out["load_start"] = load_start
    out["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    out["cluster_leftovers"] = leftovers
    if leftovers:
        print("left on the host after kvd local down: " + ", ".join(leftovers))
    print(f"load average after: {out['load_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"json: {args.json}")
    if args.plot is not None:
        plot(out, args.plot)
    return 0


if __name__ == "__main__":
    # SIGTERM (a `timeout`, a CI cancel) ends the run through its `finally`: the cluster goes down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
