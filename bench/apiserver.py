"""The embedded API server over real HTTPS: creates/s, patches/s, get latency, watch fan-out, and
the server's CPU time per write (steadier than rates on a shared machine); asserts nothing.

    .venv/bin/python bench/apiserver.py [--objects 1000] [--watchers 10] [--as USER]

Starts `kvd local apiserver` on a free port in a temporary data dir and drives it with aiohttp
as a client-go client would (bearer token, the server's CA). Fan-out: `--watchers` watches
open on configmaps, then `--objects` creates; the figure is the time from the first create
until every watcher has received every ADDED event (goal: under 1 s for 1,000 x 10).
`--as USER` makes every request as USER (impersonated, bound to the `edit` ClusterRole in the
namespace), so RBAC authorizes each one instead of the admin's system:masters shortcut.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
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


def start(data: Path) -> tuple[subprocess.Popen[str], str, str, ssl.SSLContext]:
    proc = subprocess.Popen(
        [KVD, "local", "apiserver", "--data-dir", str(data), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cm(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": "v" * 64},
    }


async def bind(http: aiohttp.ClientSession, url: str, user: str) -> None:
    """A RoleBinding of `edit` to `user` in the default namespace (made as the admin)."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"bench-{user}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    path = f"{url}/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
    async with http.post(path, json=binding) as r:
        assert r.status == 201, await r.text()


async def run(
    url: str,
    token: str,
    context: ssl.SSLContext,
    objects: int,
    watchers: int,
    *,
    pid: int,
    user: str | None = None,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/api/v1/namespaces/default/configmaps"
    if user:
        admin_conn = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(headers=headers, connector=admin_conn) as admin:
            await bind(admin, url, user)
        headers["Impersonate-User"] = user
    conn = aiohttp.TCPConnector(ssl=context, limit=watchers + 16)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as http:
        rv = (await (await http.get(base)).json())["metadata"]["resourceVersion"]
        seen = [0] * watchers
        done = [asyncio.Event() for _ in range(watchers)]
        finished_at = [0.0] * watchers

        async def watch(i: int) -> None:
            async with http.get(
                base, params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "120"}
            ) as r:
                async for _line in r.content:
                    seen[i] += 1
                    if seen[i] == objects:
                        finished_at[i] = time.monotonic()
                        done[i].set()
                        return

        tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        await asyncio.sleep(0.5)  # watches established
        t0 = time.monotonic()
        cpu0 = cpu_seconds(pid)
        sem = asyncio.Semaphore(16)

        async def create(n: int) -> None:
            async with sem, http.post(base, json=cm(f"bench-{n:05d}")) as r:
                assert r.status == 201, await r.text()

        await asyncio.gather(*(create(n) for n in range(objects)))
        created = time.monotonic() - t0
        create_cpu = cpu_seconds(pid) - cpu0
        await asyncio.wait_for(asyncio.gather(*(d.wait() for d in done)), 120)
        fanout = max(finished_at) - t0
        for t in tasks:
            t.cancel()

        async def patch(n: int) -> None:
            body = {"data": {"k": f"{n}" * 8}, "metadata": {"labels": {"patched": "yes"}}}
            headers = {"Content-Type": "application/merge-patch+json"}
            async with sem, http.patch(f"{base}/bench-{n:05d}", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()

        t1, cpu1 = time.monotonic(), cpu_seconds(pid)
        await asyncio.gather(*(patch(n) for n in range(objects)))
        patched, patch_cpu = time.monotonic() - t1, cpu_seconds(pid) - cpu1
        latencies = []
        for n in range(min(objects, 1000)):
            s = time.monotonic()
            async with http.get(f"{base}/bench-{n:05d}") as r:
                await r.read()
            latencies.append((time.monotonic() - s) * 1000)
        latencies.sort()
        print(
            f"creates: {objects} in {created:.2f} s = {objects / created:.0f}/s (16 in flight), "
            f"server CPU {create_cpu / objects * 1000:.2f} ms per create"
        )
        print(
            f"merge patches: {objects} in {patched:.2f} s = {objects / patched:.0f}/s, "
            f"server CPU {patch_cpu / objects * 1000:.2f} ms per patch"
        )
        print(
            f"get latency: p50 {statistics.median(latencies):.2f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f} ms"
        )
        print(
            f"watch fan-out: {objects} objects x {watchers} watchers, every watcher had every "
            f"event {fanout:.3f} s after the first create (goal < 1 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--as", dest="user", help="make the requests as this user (RBAC)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kvd-bench-") as tmp:
        proc, url, token, context = start(Path(tmp) / "data")
        try:
            asyncio.run(
                run(
                    url,
                    token,
                    context,
                    args.objects,
                    args.watchers,
                    pid=proc.pid,
                    user=args.user,
                )
            )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
