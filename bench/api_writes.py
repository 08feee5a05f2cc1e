"""The API writes one VMI start takes, by component, from the API server's audit log; asserts nothing.

    .venv/bin/python bench/api_writes.py [--sizes 1,5] [--keep]

Brings up `kvd local up` on its own bridge and, for each size N, creates N demo VMIs (kvd-demo
containerDisk + cloud-init, 64Mi) at once and waits until every one is Running with Ready=True,
then two more seconds for trailing writes. Every write the audit log (`DATA_DIR/logs/audit.log`,
one kube audit Event per request) records between the first create and that moment is counted
by component (the request's user), verb, resource/subresource and answer code; Lease renewals
(node, controller) run on their own clock and are left out, Events are shown apart. Every 409
is listed with its object. Then the VMIs are deleted before the next size. Issue 20's goal: at
most 2 PATCH and 4 UPDATE/CREATE per VMI beyond the VMI's and the pod's creates, and no 409.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fixtures live with the tests

import yaml  # noqa: E402

from tests.e2e.conftest import vmi_manifest  # noqa: E402
from tests.local.node.conftest import Cluster, new_cluster  # noqa: E402

VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
WRITES = ("create", "update", "patch", "delete", "deletecollection")
Key = tuple[str, str, str, str]  # (user, verb, resource[/subresource], code)


def component(user: str) -> str:
    """kvd's component from a request's user name."""
    for name in ("controller", "handler", "node"):
        if name in user:
            return name
    return user.rpartition(":")[2] or user


def audit_events(cluster: Cluster) -> list[dict[str, Any]]:
    path = cluster.data_dir / "logs" / "audit.log"
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("stage") == "ResponseComplete":
            events.append(event)
    return events


def ready(vmi: dict[str, Any]) -> bool:
    conditions = (vmi.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def one_size(
    cluster: Cluster, size: int, tag: str, *, timeout: float = 180
) -> tuple[collections.Counter[Key], list[str]]:
    skip = len(audit_events(cluster))
    names = [f"{tag}-{i}" for i in range(size)]
    for name in names:
        manifest = yaml.safe_load(vmi_manifest(name, marker=name))
        manifest["spec"]["domain"]["resources"]["requests"]["memory"] = "64Mi"
        cluster.raw.create(VMIS, manifest)
    began = time.monotonic()
    deadline = began + timeout
    while True:
        items = cluster.raw.get(VMIS)["items"]
        running = [v for v in items if v["metadata"]["name"] in names and ready(v)]
        if len(running) == size:
            break
        if time.monotonic() > deadline:
            phases = collections.Counter(
                (v.get("status") or {}).get("phase") for v in items if v["metadata"]["name"] in names
            )
            raise SystemExit(f"only {len(running)}/{size} Ready in {timeout:.0f} s: {phases}")
        time.sleep(0.5)
    print(f"{size} VMI(s) all Ready {time.monotonic() - began:.1f} s after the first create")
    time.sleep(2.0)  # trailing writes (Events, a last status patch)
    counts: collections.Counter[Key] = collections.Counter()
    conflicts = []
    for event in audit_events(cluster)[skip:]:
        ref = event.get("objectRef") or {}
        verb = event["verb"]
        if verb not in WRITES or ref.get("resource") == "leases":
            continue
        resource = ref.get("resource", "?")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        code = str(event["responseStatus"]["code"])
        who = component(event["user"]["username"])
        counts[(who, verb, resource, code)] += 1
        if code == "409":
            conflicts.append(f"{who} {verb} {resource} {ref.get('name', '')}")
    for name in names:
        cluster.kubectl("delete", "vmi", name, "--wait=false")
    deadline = time.monotonic() + timeout
    while any(v["metadata"]["name"] in names for v in cluster.raw.get(VMIS)["items"]):
        if time.monotonic() > deadline:
            raise SystemExit(f"the VMIs were not deleted in {timeout:.0f} s")
        time.sleep(0.5)
    return counts, conflicts


def show(size: int, counts: collections.Counter[Key], conflicts: list[str]) -> None:
    print(f"\n{size} VMI(s) to Ready: writes (per VMI), leases left out")
    for (who, verb, resource, code), n in sorted(counts.items()):
        print(f"  {who:<12} {verb:<7} {resource:<40} {code}  {n:>4}  ({n / size:.1f})")
    others = {"vmi": ("virtualmachineinstances", "create"), "pod": ("pods", "create")}
    beyond = [
        (verb, n)
        for (_, verb, resource, _code), n in counts.items()
        if resource != "events" and (resource, verb) not in others.values()
    ]
    patches = sum(n for verb, n in beyond if verb == "patch")
    updates = sum(n for verb, n in beyond if verb in ("update", "create"))
    events = sum(n for (_, _, resource, _), n in counts.items() if resource == "events")
    print(
        f"  beyond the VMI and pod creates, per VMI: {patches / size:.1f} PATCH, "
        f"{updates / size:.1f} UPDATE/CREATE; Events {events / size:.1f}; 409s: {len(conflicts)}"
    )
    for c in conflicts:
        print(f"    409: {c}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5", help="VMIs started at once, per round")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to Ready, per size")
    args = parser.parse_args()
    cluster = new_cluster()
    try:
        cluster.up()
        one_size(cluster, 1, "warmup")  # the first VM pays for page cache and imports
        for i, size in enumerate(int(s) for s in args.sizes.split(",")):
            counts, conflicts = one_size(cluster, size, f"w{i}", timeout=args.timeout)
            show(size, counts, conflicts)
        leftovers = cluster.raw.get("/api/v1/namespaces/default/pods")["items"]
        print(f"launcher pods left after deleting every VMI: {len(leftovers)}")
    finally:
        cluster.down()
        print(f"after down, left on the machine: {cluster.leftovers()}")
        if args.keep:
            print(f"data dir kept: {cluster.data_dir}")
        else:
            shutil.rmtree(cluster.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
