"""The handler: Scheduled → Running time and the API writes it takes per VMI; asserts nothing.

    .venv/bin/python bench/handler.py [--runs 5]

Brings up a local cluster (`kvd local up`), then per run creates a VMI, which the controller
schedules (the test fixture in tests/handler), and times from the moment the VMI is Scheduled
(status.activePods set) until the handler reports Running with Ready=True. Writes are counted
from a watch: every MODIFIED event of the VMI after Scheduled is one write (the handler patches
the VMI, nothing else does then), and the Events created for it are POSTs. Prints each run and
the medians. The whole path from creation is bench/controller.py.
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

from kvd.kube import client  # noqa: E402
from tests.handler.conftest import VMIS, Env, HandlerProcess  # noqa: E402
from tests.local.node.conftest import new_cluster  # noqa: E402


def ready(vmi: dict[str, Any]) -> bool:
    status = vmi.get("status") or {}
    return status.get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def one_run(env: Env, name: str) -> dict[str, float]:
    api = client.connect(env.cluster.kubeconfig)
    modified: list[tuple[float, dict[str, Any]]] = []
    stop = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        custom = client.list_custom(api, "kubevirt.io", "v1", "virtualmachineinstances")
        for event in w.stream(custom, field_selector=f"metadata.name={name}", timeout_seconds=120):
            if event["type"] == "MODIFIED":
                modified.append((time.monotonic(), event["object"]))
            if stop.is_set():
                w.stop()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.3)
    env.create_vmi(name)  # returns once the VMI is Scheduled
    deadline = time.monotonic() + 120
    while not any(ready(o) for _, o in modified):
        assert time.monotonic() < deadline, "not Running+Ready in 120 s"
        time.sleep(0.02)
    stop.set()
    scheduled_at = next(
        at for at, o in modified if (o.get("status") or {}).get("phase") == "Scheduled"
    )
    running_at = next(at for at, o in modified if (o.get("status") or {}).get("phase") == "Running")
    ready_at = next(at for at, o in modified if ready(o))
    patches = sum(1 for at, _ in modified if scheduled_at < at <= ready_at)
    uid = modified[0][1]["metadata"]["uid"]
    events = env.cluster.raw.get(
        "/api/v1/namespaces/default/events", {"fieldSelector": f"involvedObject.uid={uid}"}
    )["items"]
    env.cluster.raw.delete(f"{VMIS}/{name}")
    env.wait_launcher_gone(modified[-1][1], timeout=120)
    return {
        "scheduled_to_running_s": running_at - scheduled_at,
        "scheduled_to_ready_s": ready_at - scheduled_at,
        "vmi_patches": float(patches),
        "event_posts": float(len(events)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cluster = new_cluster()
    cluster.up()
    try:
        env = Env(cluster, HandlerProcess(cluster))
        results = []
        for i in range(args.runs):
            result = one_run(env, f"bench-{i}")
            results.append(result)
            print(f"run {i + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in result.items()))
        print("median:")
        for key in results[0]:
            print(f"  {key:<24} {statistics.median(r[key] for r in results):8.3f}")
    finally:
        cluster.down()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
