"""How long the API server's loop is held while hostile bodies arrive; asserts nothing.

    .venv/bin/python bench/apiserver_hostile.py [--rounds 3] [--senders 2]

Starts `kvd local apiserver` (address space capped at 1 GiB) and probes `/readyz` every 20 ms,
first idle, then while `--senders` clients each send `--rounds` of: a 2.9 MiB YAML list (seconds
of parsing, then refused: not an object), a 420-byte YAML alias bomb, JSON and YAML nested
50,000 deep, and a mapping alias bomb; last, while one legitimate 2.9 MiB custom resource
(78,000 fields) is created with dryRun. A probe's latency is the server's loop lag plus a TLS
handshake; the figures are its p50, p99 and maximum, the answers by code, and the server's peak
memory. Loopback only; every body is at most 3 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import re
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

KVD = str(Path(sys.executable).parent / "kvd")
CAP = 1024 * 1024 * 1024


def start(data: Path) -> tuple[subprocess.Popen[str], str, str, ssl.SSLContext]:
    proc = subprocess.Popen(
        [KVD, "local", "apiserver", "--data-dir", str(data), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    resource.prlimit(proc.pid, resource.RLIMIT_AS, (CAP, CAP))  # before any body is sent
    assert proc.stdout is not None
    kubeconfig = None
    while kubeconfig is None:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("apiserver did not start")
        if m := re.search(r"kubeconfig: (\S+)", line):
            kubeconfig = Path(m.group(1))
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    return proc, cluster["server"], config["users"][0]["user"]["token"], context


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "trees.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "trees", "singular": "tree", "kind": "Tree"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
        ],
    },
}


def big_tree() -> bytes:
    lines = ["apiVersion: example.com/v1", "kind: Tree", "metadata: {name: big}", "spec:"]
    size, i = 0, 0
    while size < 2_900_000:
        lines.append(f"  k{i:07d}: {'v' * 24}")
        size += len(lines[-1]) + 1
        i += 1
    return "\n".join(lines).encode()


def bodies() -> list[tuple[str, bytes, str]]:
    big = b"".join(b"- %07d %s\n" % (i, b"v" * 24) for i in range(2_900_000 // 35))
    bomb = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "data:"]
    bomb.append('  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"  {name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    maps = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}"]
    maps.append("x0: &x0 {a: lollollollollollollol, b: lollollollollollollol}")
    for level in range(1, 8):
        maps.append(f"x{level}: &x{level} {{{','.join(f'{k}: *x{level - 1}' for k in 'abcdef')}}}")
    maps.append("data: *x7")
    cms = "/api/v1/namespaces/default/configmaps"
    return [
        (cms, big, "application/yaml"),
        (cms, "\n".join(bomb).encode(), "application/yaml"),
        (cms, b"[" * 50_000 + b"]" * 50_000, "application/json"),
        (cms, b"- " * 50_000 + b"x", "application/yaml"),
        (cms, "\n".join(maps).encode(), "application/yaml"),
    ]


async def probe_until(
    http: aiohttp.ClientSession, url: str, context: ssl.SSLContext, stop: asyncio.Event
) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.monotonic()
        # a new connection each time, as a kubelet's probe makes
        async with http.get(f"{url}/readyz", ssl=context, headers={"Connection": "close"}) as r:
            await r.read()
            assert r.status == 200
        latencies.append((time.monotonic() - started) * 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)
    return latencies


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[max(0, int(len(ms) * 0.99) - 1)]
    return (
        f"{name}: {len(ms)} probes, p50 {statistics.median(ms):.1f} ms, "
        f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )


async def run(
    url: str, token: str, context: ssl.SSLContext, *, rounds: int, senders: int, pid: int
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(
            f"{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD, ssl=context
        ) as r:
            assert r.status == 201, await r.text()
        while True:  # the CRD is served once established
            async with http.get(f"{url}/apis/example.com/v1/trees", ssl=context) as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.1)

        stop = asyncio.Event()
        idle = asyncio.create_task(probe_until(http, url, context, stop))
        await asyncio.sleep(2)
        stop.set()
        print(summary("idle", await idle))

        storm = bodies() * rounds
        codes: collections.Counter[int] = collections.Counter()

        async def send() -> None:
            for path, body, content_type in storm:
                async with http.post(
                    url + path, data=body, headers={"Content-Type": content_type}, ssl=context
                ) as r:
                    await r.read()
                    codes[r.status] += 1

        stop = asyncio.Event()
        probing = asyncio.create_task(probe_until(http, url, context, stop))
        started = time.monotonic()
        await asyncio.gather(*(send() for _ in range(senders)))
        took = time.monotonic() - started
        stop.set()
        print(summary("during the storm", await probing))
        print(
            f"storm: {len(storm) * senders} bodies from {senders} clients in {took:.1f} s, "
            f"answers {dict(sorted(codes.items()))}"
        )

        stop = asyncio.Event()
        probing = asyncio.create_task(probe_until(http, url, context, stop))
        path = "/apis/example.com/v1/namespaces/default/trees?dryRun=All"
        async with http.post(
            url + path, data=big_tree(), headers={"Content-Type": "application/yaml"}, ssl=context
        ) as r:
            await r.read()
            code = r.status
        stop.set()
        print(summary(f"during one 2.9 MiB object's create ({code})", await probing))
    status = Path(f"/proc/{pid}/status").read_text()
    peak = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert peak is not None
    print(f"server peak memory: {int(peak.group(1)) / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kvd-bench-") as tmp:
        proc, url, token, context = start(Path(tmp) / "data")
        try:
            asyncio.run(
                run(url, token, context, rounds=args.rounds, senders=args.senders, pid=proc.pid)
            )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
