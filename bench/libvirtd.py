"""How fast a launcher's private libvirtd starts, and what it costs in memory; asserts nothing.

    .venv/bin/python bench/libvirtd.py [--seeded-runs 5]

Each start runs in a fresh kvd sandbox (empty private /var/cache/libvirt, as a new pod has):
one cold start against an empty seed store, then seeded starts from the store it filled. Memory is
read after the daemon has been idle a moment: RSS, and PSS (shared pages split among their users,
the fairer per-launcher figure). For the record of why kvd does without it, a virtlogd started in
the same kind of sandbox is measured too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kvd import logs, sandbox
from kvd.launcher.virt.libvirtd import Libvirtd

IDLE = 1.0  # seconds to let a fresh daemon settle before reading its memory


def memory_kb(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def field(text: str, name: str) -> int:
        return int(text.split(f"{name}:", 1)[1].split(maxsplit=1)[0])

    return {"rss_kb": field(status, "VmRSS"), "pss_kb": field(rollup, "Pss")}


def wait_for_path(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        time.sleep(0.01)


def inside(run_dir: Path, store: Path, virtlogd: bool) -> dict[str, Any]:
    """One measurement, in the sandbox this process was started in."""
    if virtlogd:
        binary = shutil.which("virtlogd") or "/usr/sbin/virtlogd"
        proc = subprocess.Popen([binary, "--pid-file", str(run_dir / "virtlogd.pid")])
        try:
            wait_for_path(Path("/run/libvirt/virtlogd-sock"), 10)
            time.sleep(IDLE)
            return memory_kb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    daemon = Libvirtd(run_dir, caps_store=store)
    daemon.start()
    try:
        time.sleep(IDLE)
        assert daemon.pid is not None
        return {"seconds": daemon.start_seconds, "seeded": daemon.seeded, **memory_kb(daemon.pid)}
    finally:
        daemon.stop()


def run_sandboxed(work: Path, name: str, store: Path, *, virtlogd: bool = False) -> dict[str, Any]:
    run_dir = work / name
    run_dir.mkdir()
    argv = [sys.executable, __file__, "--inside", str(run_dir), "--store", str(store)]
    if virtlogd:
        argv.append("--virtlogd")
    started = time.monotonic()
    proc = sandbox.popen(argv, sandbox.SandboxSpec(), stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    # The whole sandboxed run but the idle wait: sandbox, python and imports, start, stop.
    result["process_seconds"] = time.monotonic() - started - IDLE
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeded-runs", type=int, default=5)
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--virtlogd", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logs.configure(level="warning")
    if args.inside:
        print(json.dumps(inside(args.inside, args.store, args.virtlogd)))
        return
    with tempfile.TemporaryDirectory(prefix="kvd-bench-") as tmp:
        work, store = Path(tmp), Path(tmp) / "store"
        cold = run_sandboxed(work, "cold", store)
        seeded = [run_sandboxed(work, f"seeded{i}", store) for i in range(args.seeded_runs)]
        logd = run_sandboxed(work, "virtlogd", store, virtlogd=True)

    def show(label: str, r: dict[str, Any]) -> None:
        print(
            f"{label:<14} libvirtd ready {r['seconds']:6.3f} s (whole run "
            f"{r['process_seconds']:6.3f} s)  seeded={r['seeded']!s:<5}  "
            f"RSS {r['rss_kb'] / 1024:5.1f} MiB  PSS {r['pss_kb'] / 1024:5.1f} MiB"
        )

    show("cold", cold)
    for i, r in enumerate(seeded):
        show(f"seeded #{i + 1}", r)
    times = [r["seconds"] for r in seeded]
    print(f"seeded median  {statistics.median(times):.3f} s, min {min(times):.3f} s")
    print(
        f"virtlogd idle  RSS {logd['rss_kb'] / 1024:5.1f} MiB  PSS {logd['pss_kb'] / 1024:5.1f} MiB"
        " (not run by kvd: stdio_handler = file)"
    )


if __name__ == "__main__":
    main()
