"""The launcher's headline figures against bare QEMU; prints numbers, asserts nothing.

    .venv/bin/python bench/launcher.py [--runs 3] [--firmware bios|efi|secureboot]

Per run, a fresh `kvd launcher` in a fresh sandbox (as a new pod), driven over gRPC as the
handler drives it, with the kvd-demo containerDisk and a cloud-init disk:

  launcher start → libvirtd ready    (the launcher's own `launcher_ready` log figure)
  launcher start → socket answers
  launcher start → domain running    (DefineDomain + LaunchDomain sent as soon as it answers)
  launcher start → boot marker       (KVD-GUEST-BOOTED on the Console stream)
  LaunchDomain   → boot marker
  RSS and PSS of launcher + libvirtd while the guest runs (QEMU excluded)

and, in the same run, a bare `qemu-system-x86_64 -accel tcg` of the same image and devices,
from spawn to the same marker on its serial port. Goals (issue 3): launcher + libvirtd ≤ 60 MiB
RSS; start → running ≤ 1.5 s; marker within 1.2x of bare QEMU.

`--firmware efi|secureboot` boots both through OVMF (the launcher's builds, from QEMU's
firmware descriptors; Secure Boot with SMM), with 512 MiB since the guest needs 384 MiB there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness lives with the tests

from kvd.launcher import ovmf  # noqa: E402
from kvd.rpc.launcher.v1 import launcher_pb2  # noqa: E402
from tests.launcher.harness import RPC_TIMEOUT, Console, Launcher  # noqa: E402

MARKER = "KVD-GUEST-BOOTED"
GUEST = REPO / "build" / "guest"
FIRMWARE: dict[str, tuple[dict[str, Any] | None, int]] = {  # spec.domain.firmware, MiB
    "bios": (None, 128),
    "efi": ({"bootloader": {"efi": {"secureBoot": False}}}, 512),
    "secureboot": ({"bootloader": {"efi": {"secureBoot": True}}}, 512),
}


def memory_kb(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def field(text: str, name: str) -> int:
        return int(text.split(f"{name}:", 1)[1].split(maxsplit=1)[0])

    return field(status, "VmRSS"), field(rollup, "Pss")


def launcher_run(work: Path, firmware: str) -> dict[str, float]:
    launcher = Launcher(work, GUEST, name="bench")
    spec, memory = FIRMWARE[firmware]
    try:
        t0 = time.monotonic()
        launcher.start()
        answering = time.monotonic() - t0
        launcher.define(
            launcher.manifest(
                user_data="#!/bin/sh\necho bench\n", memory=f"{memory}Mi", firmware=spec
            )
        )
        launch_sent = time.monotonic()
        launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
        running = time.monotonic() - t0
        console = Console(launcher.stub)
        console.wait_for(MARKER)
        marker = time.monotonic()
        console.wait_for("KVD-READY")
        rss = pss = 0
        for pid in launcher.processes():
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm.startswith("qemu"):
                continue
            r, p = memory_kb(pid)
            rss, pss = rss + r, pss + p
        ready = next(
            json.loads(line)["seconds"]
            for line in launcher.log().splitlines()
            if '"launcher_ready"' in line
        )
        console.cancel()
        return {
            "libvirtd_ready_s": float(ready),
            "answering_s": answering,
            "running_s": running,
            "marker_s": marker - t0,
            "launch_to_marker_s": marker - launch_sent,
            "rss_mib": rss / 1024,
            "pss_mib": pss / 1024,
        }
    finally:
        launcher.close()


def _bare_firmware(work: Path, firmware: str) -> list[str]:
    if firmware == "bios":
        return []
    builds = ovmf.discover()
    build = builds.efi_secure if firmware == "secureboot" else builds.efi
    if build is None:
        raise RuntimeError(f"no OVMF build for {firmware}")
    store = work / "vars.fd"
    store.write_bytes(build.vars_template.read_bytes())
    args = [
        "-drive", f"if=pflash,format=raw,readonly=on,file={build.code}",
        "-drive", f"if=pflash,format=raw,file={store}",
    ]  # fmt: skip
    if firmware == "secureboot":
        args += ["-machine", "smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
    return args


def bare_qemu_run(work: Path, firmware: str) -> float:
    overlay = work / "overlay.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            str(GUEST / "kvd-demo.qcow2"),
            str(overlay),
        ],
        check=True,
        timeout=30,
    )
    log = work / "serial.log"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-machine",
            "q35",
            "-cpu",
            "max",
            "-m",
            str(FIRMWARE[firmware][1]),
            *_bare_firmware(work, firmware),
            "-nodefaults",
            "-display",
            "none",
            "-no-user-config",
            "-drive",
            f"file={overlay},if=virtio,format=qcow2,cache=writeback",
            "-serial",
            f"file:{log}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while MARKER not in (log.read_text(errors="replace") if log.exists() else ""):
            if time.monotonic() - t0 > 120 or proc.poll() is not None:
                raise RuntimeError("bare QEMU never printed the marker")
            time.sleep(0.02)
        return time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--firmware", choices=sorted(FIRMWARE), default="bios")
    args = parser.parse_args()
    results: list[dict[str, float]] = []
    bare: list[float] = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kvd-bench-") as tmp:
            results.append(launcher_run(Path(tmp) / "launcher", args.firmware))
        with tempfile.TemporaryDirectory(prefix="kvd-bench-") as tmp:
            bare.append(bare_qemu_run(Path(tmp), args.firmware))
        print(
            f"run {i + 1}: "
            + ", ".join(f"{k}={v:.3f}" for k, v in results[-1].items())
            + f", bare_qemu_marker_s={bare[-1]:.3f}"
        )
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    bare_med = statistics.median(bare)
    print(f"\nmedian of {args.runs} runs, firmware {args.firmware}")
    print(f"  launcher start -> libvirtd ready      {med['libvirtd_ready_s']:.3f} s")
    print(f"  launcher start -> socket answers      {med['answering_s']:.3f} s")
    print(f"  launcher start -> domain running      {med['running_s']:.3f} s   (goal <= 1.5 s)")
    print(f"  launcher start -> boot marker         {med['marker_s']:.3f} s")
    print(f"  LaunchDomain   -> boot marker         {med['launch_to_marker_s']:.3f} s")
    print(f"  bare QEMU spawn -> boot marker        {bare_med:.3f} s")
    print(
        f"  marker ratio (launch / bare)          {med['launch_to_marker_s'] / bare_med:.2f}x"
        "   (goal <= 1.2x)"
    )
    print(f"  launcher start -> marker / bare       {med['marker_s'] / bare_med:.2f}x")
    print(f"  RSS launcher + libvirtd               {med['rss_mib']:.1f} MiB   (goal <= 60 MiB)")
    print(f"  PSS launcher + libvirtd               {med['pss_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
