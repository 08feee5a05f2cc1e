"""`kvd launcher`: the process in each launcher pod's `compute` container."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kvd import pid1
from kvd.api.defaults import DEFAULT_GRACE_PERIOD_SECONDS
from kvd.cli import program


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "launcher",
        help="run one VMI's libvirt domain (inside its launcher pod)",
        description="Runs a private libvirtd and serves LauncherService on "
        "<run-dir>/launcher.sock for one VirtualMachineInstance. Exit codes: 0 the guest "
        "shut down; 1 crashed or failed to start; 2 killed (grace period over); 3 never "
        "defined or stopped before it ran; 4 could not start.",
    )
    parser.add_argument("--namespace", required=True, help="namespace of the VMI")
    parser.add_argument("--name", required=True, help="name of the VMI")
    parser.add_argument("--uid", required=True, help="uid of the VMI")
    parser.add_argument("--run-dir", required=True, type=Path, help="socket, disks, console log")
    parser.add_argument(
        "--grace-period-seconds",
        type=_seconds,
        default=DEFAULT_GRACE_PERIOD_SECONDS,
        help="ACPI shutdown grace before the domain is killed on SIGTERM (default %(default)s)",
    )
    parser.add_argument(
        "--allow-emulation",
        action="store_true",
        help="run under TCG software emulation when KVM is not usable",
    )
    parser.add_argument(
        "--pod-network",
        action="store_true",
        help="the launcher runs in its pod's own network namespace (as the controller renders "
        "launcher pods): the guest may take eth0 over (bridge binding). Without it, VMIs with "
        "interfaces are refused, so a launcher run on a host never touches the host's network",
    )
    parser.add_argument(
        "--container-disk-dir",
        type=Path,
        default=Path("/var/run/kvd/container-disks"),
        help="where the pod mounts containerDisk images, one directory per volume",
    )
    parser.add_argument(
        "--pvc-dir",
        type=Path,
        default=Path("/var/run/kvd/pvcs"),
        help="where the pod mounts PVCs, one entry per claim",
    )
    parser.add_argument(
        "--pvc-capacity",
        action="append",
        default=[],
        metavar="CLAIM=QUANTITY",
        type=_claim_capacity,
        help="a filesystem claim's capacity (repeatable): a missing disk.img on it is created "
        "sparse at this size less KubeVirt's file system overhead",
    )
    parser.add_argument(
        "--host-disk-dir",
        type=Path,
        default=Path("/var/run/kvd/host-disks"),
        help="where the pod mounts each hostDisk's directory, one per volume (the file is "
        "there under its own name)",
    )
    parser.add_argument(
        "--kernel-boot-dir",
        type=Path,
        default=Path("/var/run/kvd/kernel-boot"),
        help="where the pod mounts the kernelBoot container's image (its kernelPath and "
        "initrdPath are paths under it)",
    )
    parser.add_argument(
        "--define-timeout-seconds",
        type=float,
        default=300.0,
        help="exit if no DefineDomain arrives within this time (default 300)",
    )
    parser.add_argument(
        "--simulate-crash",
        action="store_true",
        help="exit at once with an error, as a launcher that keeps crashing would (set for a "
        "VMI annotated kubevirt.io/func-test-virt-launcher-fail-fast, as KubeVirt does)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # As a pod container's entry point the launcher is PID 1, which must reap the QEMU that
    # libvirtd orphans or the domain never stops (kvd/pid1.py); before any thread starts.
    pid1.become_init_if_pid1()
    # Before any thread or child: they inherit the launcher's weight over its guest.
    refused = program.raise_priority()
    if args.simulate_crash:
        print("kvd launcher: simulated crash (--simulate-crash)", file=sys.stderr, flush=True)
        return 1
    # The launcher's dependencies (libvirt, grpc) load only for this command.
    from kvd.launcher import app  # noqa: PLC0415
    from kvd.launcher.model import Identity  # noqa: PLC0415

    program.configure_logging()
    program.log_priority(refused)
    settings = app.Settings(
        identity=Identity(namespace=args.namespace, name=args.name, uid=args.uid),
        run_dir=args.run_dir.absolute(),
        container_disk_dir=args.container_disk_dir.absolute(),
        pvc_dir=args.pvc_dir.absolute(),
        pvc_capacities=dict(args.pvc_capacity),
        host_disk_dir=args.host_disk_dir.absolute(),
        kernel_boot_dir=args.kernel_boot_dir.absolute(),
        grace_period_seconds=args.grace_period_seconds,
        allow_emulation=args.allow_emulation,
        define_timeout_seconds=args.define_timeout_seconds,
        pod_network=args.pod_network,
    )
    return app.run(settings)


def _claim_capacity(value: str) -> tuple[str, int]:
    """CLAIM=QUANTITY → (claim, bytes); argparse reports anything else as a usage error."""
    from kvd.api.quantity import Quantity, QuantityError  # noqa: PLC0415

    claim, _, raw = value.partition("=")
    try:
        size = Quantity.parse(raw).bytes()
    except QuantityError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None
    if not claim or size <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected CLAIM=QUANTITY, e.g. data=1Gi")
    return claim, size


def _seconds(value: str) -> int:
    """A whole number of seconds, 0 or more (argparse reports anything else as a usage error)."""
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds, 0 or more")
    return seconds
