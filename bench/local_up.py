"""The local cluster: `kvd local up` to ready, pod creation to Running, teardown; asserts nothing.

    .venv/bin/python bench/local_up.py [--runs 3] [--pods 10]

Each run brings a cluster up in a fresh data dir (with its own bridge, CIDR and cgroup parent),
times `kvd local up --detach` until it returns (every component ready, CRDs Established),
creates `--pods` busybox pods one after another and times each from the create call until the
API shows it Running, measures the node's resident memory and each pod's shim, then times
`kvd local down`. Prints the medians. Goal (issue 5): up under 10 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the cluster helper lives with the tests

from tests.local.node.conftest import KVD, new_cluster  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def one_run(pods: int) -> dict[str, float]:
    cluster = new_cluster()
    began = time.monotonic()
    cluster.up()
    up_s = time.monotonic() - began
    try:
        starts = []
        for i in range(pods):
            t0 = time.monotonic()
            cluster.create_pod(
                {
                    "metadata": {"name": f"bench-{i}"},
                    "spec": {
                        "containers": [
                            {"name": "main", "image": "busybox", "command": ["sleep", "1000"]}
                        ]
                    },
                }
            )
            cluster.wait_phase(f"bench-{i}", "Running")
            starts.append(time.monotonic() - t0)
        node_pid = cluster.components()["node"]
        shims = subprocess.run(
            ["pgrep", "-f", f"kvd-shim {cluster.data_dir}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        shim_kib = statistics.mean(rss_kib(int(p)) for p in shims) if shims else 0.0
        node_kib = rss_kib(node_pid)
    finally:
        t0 = time.monotonic()
        cluster.down()
        down_s = time.monotonic() - t0
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    return {
        "up_s": up_s,
        "pod_running_median_s": statistics.median(starts),
        "pod_running_max_s": max(starts),
        "node_rss_mib": node_kib / 1024,
        "shim_rss_mib": shim_kib / 1024,
        "down_s": down_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pods", type=int, default=10)
    args = parser.parse_args()
    print(f"kvd: {KVD}; {args.runs} runs, {args.pods} pods each", flush=True)
    results = []
    for i in range(args.runs):
        result = one_run(args.pods)
        results.append(result)
        print(f"run {i + 1}: " + json.dumps({k: round(v, 3) for k, v in result.items()}))
    print("median:")
    for key in results[0]:
        print(f"  {key:<24} {statistics.median(r[key] for r in results):8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
