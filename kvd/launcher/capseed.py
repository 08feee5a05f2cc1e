"""Seed the host's QEMU capability store before the first VM: `python -m kvd.launcher.capseed`.

A launcher whose store (`capcache`) has no entry for its identity probes QEMU itself, 8-9 s, so the
first VM of a fresh host took 11.4 s to Running and the second 1.8 s. This does that probe ahead
of time, once per CPU a launcher may be pinned to (the key includes the CPU, see `capcache`): for
each, a `Libvirtd` exactly as a launcher starts it, in a kvd sandbox (private libvirt directories,
as in a pod), pinned to that CPU and with a pod's PATH, so that it probes and publishes the entry a
launcher will look up. Then a second daemon on a fresh private cache must start *seeded* from that
entry, libvirt accepting it: the seed is checked by the only judge that counts.

An entry already there for the current identity is only checked (a fraction of a second per CPU),
so scripts/setup runs this every time; after QEMU, libvirt, the kernel or the microcode changed,
the identity is a new key, and this seeds it afresh (an old entry is never offered again). Entries
of older identities stay: other kvd installations on the host may share the store.

    python -m kvd.launcher.capseed [--store DIR] [--cpus 0,2-3] [--jobs N]

Exit status 0 when every CPU has an entry libvirt accepts, 1 otherwise. Needs root (the sandbox).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from kvd import logs, sandbox
from kvd.launcher.capcache import default_store
from kvd.launcher.virt.libvirtd import Libvirtd, LibvirtdError

# What a launcher's container gets (the OCI default, and the local node's), after kvd's own bin
# directory: libvirtd looks for QEMU on PATH, and the QEMU binaries found are part of the key.
POD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROBE_TIMEOUT = 180.0  # a cold probe is 8-9 s alone; more with every CPU probing at once
_RUN_DIR = Path("/run/libvirt/kvd-capseed")  # inside the sandbox's tmpfs: gone with it
_PRIVATE_CACHE = Path("/var/cache/libvirt/qemu/capabilities")  # the sandbox's, libvirtd's own


@dataclasses.dataclass(frozen=True)
class Result:
    cpu: int
    ok: bool
    key: str | None = None
    probed: bool = False  # the entry was made now (else: it was there, and libvirt accepted it)
    probe_seconds: float | None = None
    seeded_seconds: float | None = None
    error: str | None = None

    def line(self) -> str:
        if not self.ok:
            return f"cpu {self.cpu}: FAILED: {self.error}"
        seeded = f"a seeded start takes {self.seeded_seconds:.2f} s"
        if self.probed:
            return (
                f"cpu {self.cpu}: probed QEMU in {self.probe_seconds:.1f} s, {seeded} ({self.key})"
            )
        return f"cpu {self.cpu}: up to date, {seeded} ({self.key})"


def seed(store: Path, cpus: Sequence[int], *, jobs: int) -> list[Result]:
    """Seed and check `store` for each CPU, at most `jobs` at a time (each on its own CPU)."""
    pending, running, done = list(cpus), list[_Probe](), list[Result]()
    while pending or running:
        while pending and len(running) < jobs:
            running.append(_Probe(pending.pop(0), store))
        probe = running.pop(0)
        done.append(probe.result())
    return sorted(done, key=lambda r: r.cpu)


class _Probe:
    """One CPU's probe and check, in its own sandbox: `python -m kvd.launcher.capseed --one`."""

    def __init__(self, cpu: int, store: Path) -> None:
        self.cpu = cpu
        argv = ["taskset", "--cpu-list", str(cpu), sys.executable, "-m", "kvd.launcher.capseed"]
        argv += ["--one", "--store", str(store)]
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": f"{bin_dir}:{POD_PATH}"}
        self.proc = sandbox.popen(
            argv, sandbox.SandboxSpec(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )

    def result(self) -> Result:
        try:
            out, err = self.proc.communicate(timeout=PROBE_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            found = json.loads(lines[-1])
            return Result(cpu=self.cpu, **found)
        except (IndexError, ValueError, TypeError):
            tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-5:])
            return Result(self.cpu, False, error=f"exit status {self.proc.returncode}: {tail}")


def one(store: Path) -> Result:
    """In the sandbox, pinned to one CPU: start a launcher's libvirtd on the empty private cache
    (seeded from `store` when it has the entry, else probing QEMU and publishing the entry), then
    again on an emptied cache, which must start seeded from the entry and keep it (no re-probe)."""
    cpu = min(os.sched_getaffinity(0))
    first = Libvirtd(_RUN_DIR, caps_store=store, start_timeout=PROBE_TIMEOUT)
    check = Libvirtd(_RUN_DIR, caps_store=store)
    try:
        with first:
            pass
        # libvirtd reads its cache only from /var/cache/libvirt (this sandbox's): empty it
        shutil.rmtree(_PRIVATE_CACHE, ignore_errors=True)
        with check:
            pass
    except LibvirtdError as e:
        return Result(cpu, False, error=str(e))
    if not check.seeded:
        error = "libvirt re-probed QEMU despite the entry just made (is the daemon pinned?)"
        return Result(cpu, False, key=check.caps_key, error=error)
    probed = not first.seeded
    return Result(
        cpu,
        True,
        key=check.caps_key,
        probed=probed,
        probe_seconds=first.start_seconds if probed else None,
        seeded_seconds=check.start_seconds,
    )


def parse_cpus(text: str) -> list[int]:
    """`0,2-3` → [0, 2, 3]; `all` → every CPU this process may run on."""
    if text == "all":
        return sorted(os.sched_getaffinity(0))
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return sorted(cpus)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvd.launcher.capseed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--store", type=Path, default=None, help="default: $KVD_CAPS_CACHE or "
                        "/var/cache/kvd/libvirt-caps")  # fmt: skip
    parser.add_argument(
        "--cpus", default="all", help="CPUs to seed, e.g. 0,2-3 (default: all this process may use)"
    )
    parser.add_argument("--jobs", type=int, default=4, help="probes at once (default 4)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # in the sandbox
    args = parser.parse_args(argv)
    store = args.store or default_store()
    if args.one:
        logs.configure(level="warning", json=True)  # to stderr; stdout carries the result
        result = one(store)
        found = dataclasses.asdict(result)
        del found["cpu"]  # the caller knows which CPU it pinned this to
        print(json.dumps(found), flush=True)
        return 0 if result.ok else 1
    logs.configure(level="warning")
    try:
        cpus = parse_cpus(args.cpus)
    except ValueError:
        parser.error(f"--cpus {args.cpus!r}: expected a list like 0,2-3, or all")
    started = time.monotonic()
    results = seed(store, cpus, jobs=max(1, min(args.jobs, len(cpus))))
    for result in results:
        print(result.line())
    ok = all(r.ok for r in results)
    print(f"capability store {store}: {'ready' if ok else 'NOT ready'} "
          f"for {len(cpus)} CPU(s) in {time.monotonic() - started:.1f} s")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
