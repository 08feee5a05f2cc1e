"""The API server store's headline figures; prints numbers, asserts nothing.

    .venv/bin/python bench/apiserver_store.py [--objects 5000] [--updates 20000]

On a fresh SQLite file in a temporary directory, with pod-sized objects (about 2 KiB of JSON):

  creates/s and updates/s        one transaction each, as the API server writes
  get p50/p99                    a read parses a fresh dict; deepcopy of a cached dict for scale
  list of every object           what a relist costs the event loop
  reopen                         objects plus the kept history read back, as after a restart
  fan-out                        1,000 creates while 10 watchers wait: time until every watcher
                                 has every event (goal well under 1 s), written in one burst and
                                 with the loop yielding after each write (a wake-up per event)
  write latency                  p50 to max of single writes, steady and in bursts: what a
                                 write holds the event loop for, checkpoints included
  idle watchers                  creates/s while 100 watchers of another resource wait: they
                                 must cost nothing, since only the written resource's wake
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kvd.local.apiserver.store import ResourceKey, Store, Watcher

PODS = ResourceKey("", "pods")
NODES = ResourceKey("", "nodes")
FAN_OUT_EVENTS = 1000
FAN_OUT_WATCHERS = 10


def pod(name: str, namespace: str = "default") -> dict[str, Any]:
    """A virt-launcher-like pod, the commonest and among the larger objects kvd stores."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"0b7c6a3e-1111-2222-3333-{hash(name) & 0xFFFFFFFFFFFF:012x}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": name},
            "annotations": {"kubevirt.io/domain": name, "note": "x" * 100},
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachineInstance",
                    "name": name,
                    "uid": "1",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "compute",
                    "image": "kvd/launcher:latest",
                    "command": ["/usr/bin/kvd", "launcher", "--name", name],
                    "resources": {"limits": {"memory": "1Gi", "cpu": "1"}},
                    "env": [{"name": f"E{i}", "value": "v" * 20} for i in range(10)],
                    "volumeMounts": [
                        {"name": f"v{i}", "mountPath": f"/var/run/x{i}"} for i in range(6)
                    ],
                }
            ],
            "volumes": [{"name": f"v{i}", "emptyDir": {}} for i in range(6)],
            "nodeName": "local",
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                for t in ("Ready", "Initialized", "PodScheduled", "ContainersReady")
            ],
        },
    }


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s ({seconds * 1e6 / n:.0f} us each)"


def spread(samples_ns: list[int]) -> str:
    """p50, p99, p99.9 and max of the time one call held the event loop."""
    q = statistics.quantiles(samples_ns, n=1000)
    return (
        f"p50 {q[499] / 1000:.0f} us, p99 {q[989] / 1000:.0f} us, "
        f"p99.9 {q[998] / 1e6:.1f} ms, max {max(samples_ns) / 1e6:.1f} ms"
    )


def update(store: Store, i: int, objects: int) -> int:
    """One update of a pod's status; returns how long it took, in ns."""
    j = i % objects
    body = pod(f"pod-{j}", f"ns{j % 10}")
    body["status"]["podIP"] = f"10.0.{i // 250 % 250}.{i % 250}"
    start = time.perf_counter_ns()
    store.update(PODS, f"ns{j % 10}", f"pod-{j}", body, expected=None)
    return time.perf_counter_ns() - start


def writes(store: Store, objects: int, updates: int) -> None:
    bodies = [pod(f"pod-{i}", f"ns{i % 10}") for i in range(objects)]
    samples = []
    t0 = time.perf_counter()
    for i, body in enumerate(bodies):
        start = time.perf_counter_ns()
        store.create(PODS, f"ns{i % 10}", f"pod-{i}", body)
        samples.append(time.perf_counter_ns() - start)
    print(f"  creates            {rate(objects, time.perf_counter() - t0)}")
    print(f"                     {spread(samples)}")
    samples = []
    t0 = time.perf_counter()
    for i in range(updates):
        samples.append(update(store, i, objects))
    print(f"  updates            {rate(updates, time.perf_counter() - t0)}")
    print(f"                     {spread(samples)}")
    # as an API server writes: bursts, then the loop does other things
    samples = []
    for i in range(5000):
        samples.append(update(store, i, objects))
        if i % 50 == 49:
            time.sleep(0.02)
    print(f"  updates in bursts  {spread(samples)}  (50 at a time, 20 ms apart)")


def reads(store: Store, objects: int) -> None:
    names = [(f"ns{i % 10}", f"pod-{i}") for i in range(objects)]
    random.seed(1)
    samples = []
    for namespace, name in random.choices(names, k=20_000):
        start = time.perf_counter_ns()
        store.get(PODS, namespace, name)
        samples.append(time.perf_counter_ns() - start)
    q = statistics.quantiles(samples, n=100)
    print(f"  get                p50 {q[49] / 1000:.1f} us, p99 {q[98] / 1000:.1f} us")
    cached = pod("x")
    t0 = time.perf_counter()
    for _ in range(2000):
        copy.deepcopy(cached)
    deepcopy_us = (time.perf_counter() - t0) / 2000 * 1e6
    print(f"                     (copy.deepcopy of the same dict: {deepcopy_us:.1f} us)")
    t0 = time.perf_counter()
    items, _ = store.list(PODS, None)
    print(f"  list {len(items):,} objects   {(time.perf_counter() - t0) * 1e3:.1f} ms")
    t0 = time.perf_counter()
    items, _ = store.list(PODS, "ns3")
    print(
        f"  list one namespace {(time.perf_counter() - t0) * 1e3:.1f} ms ({len(items):,} objects)"
    )


async def fan_out(store: Store, *, yielding: bool) -> tuple[float, float]:
    """Seconds from the first of 1,000 creates until all 10 watchers have all 1,000 events, and
    from the last create until then."""
    since = store.revision

    async def read(watcher: Watcher) -> None:
        for _ in range(FAN_OUT_EVENTS):
            event = await watcher.next(10.0)
            if event is None:
                raise TimeoutError("a watcher missed an event")

    readers = [
        asyncio.create_task(read(store.watch(PODS, "fan", since))) for _ in range(FAN_OUT_WATCHERS)
    ]
    await asyncio.sleep(0)  # every watcher is now blocked in next()
    tag = "y" if yielding else "b"
    t0 = time.perf_counter()
    for i in range(FAN_OUT_EVENTS):
        store.create(PODS, "fan", f"{tag}-{i}", pod(f"{tag}-{i}", "fan"))
        if yielding:
            await asyncio.sleep(0)
    written = time.perf_counter()
    await asyncio.gather(*readers)
    done = time.perf_counter()
    return done - t0, done - written


async def idle_watchers(store: Store, n: int) -> None:
    watchers = [store.watch(NODES, None, store.revision) for _ in range(100)]
    blocked = [asyncio.create_task(w.next(None)) for w in watchers]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    for i in range(n):
        store.create(PODS, "idle", f"i-{i}", pod(f"i-{i}", "idle"))
        await asyncio.sleep(0)  # give any woken watcher its turn, as a server's loop would
    elapsed = time.perf_counter() - t0
    print(f"  creates, 100 idle watchers of another resource   {rate(n, elapsed)}")
    for w in watchers:
        w.close()
    await asyncio.gather(*blocked, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--updates", type=int, default=20_000)
    args = parser.parse_args()
    size = len(json.dumps(pod("pod-1"), separators=(",", ":")))
    print(f"objects of {size:,} bytes of JSON; {args.objects:,} objects, {args.updates:,} updates")
    with tempfile.TemporaryDirectory(prefix="kvd-bench-") as tmp:
        path = Path(tmp) / "store.db"
        store = Store(path)
        writes(store, args.objects, args.updates)
        reads(store, args.objects)
        store.close()

        t0 = time.perf_counter()
        store = Store(path)
        print(
            f"  reopen             {(time.perf_counter() - t0) * 1e3:.0f} ms "
            f"({args.objects:,} objects, {store.revision - store.oldest + 1:,} events of history; "
            f"{path.stat().st_size / 2**20:.0f} MiB file)"
        )
        for yielding in (False, True):
            total, after = asyncio.run(fan_out(store, yielding=yielding))
            how = "yielding after each create" if yielding else "creates in one burst"
            print(
                f"  fan-out, {how}: every watcher has every event {total * 1e3:.0f} ms after "
                f"the first create, {after * 1e3:.1f} ms after the last"
            )
        asyncio.run(idle_watchers(store, 2000))
        store.close()


if __name__ == "__main__":
    main()
