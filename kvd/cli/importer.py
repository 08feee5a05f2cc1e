"""`kvd importer`: fill one volume from one source (what a DataVolume's importer pod runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kvd.cli import program


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "importer",
        help="import a disk image into a volume (a DataVolume's importer pod runs this)",
        description="Writes a raw disk image into TARGET (a Filesystem volume's directory, "
        "where it becomes disk.img, or a Block device) from an http URL, a containerDisk "
        "image's mount, another claim's mount, or blank. Serves its progress as the Prometheus "
        "metric kubevirt_cdi_import_progress_total on --metrics-port; prints its outcome as "
        "one JSON line last. Exit 0: done; 1: failed, a retry may help; 2: failed for good.",
    )
    parser.add_argument("--source", choices=("http", "registry", "pvc", "blank"), required=True)
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--owner-uid", required=True, help="the DataVolume's uid (the metric)")
    parser.add_argument("--url", default="", help="http: the image's URL")
    parser.add_argument(
        "--source-path", type=Path, default=None, help="registry/pvc: where the source is mounted"
    )
    parser.add_argument("--cert-dir", type=Path, default=None, help="http: CA bundles (PEM)")
    parser.add_argument(
        "--secret-dir", type=Path, default=None, help="http: accessKeyId and secretKey files"
    )
    parser.add_argument("--header", action="append", default=[], help="http: 'Name: value'")
    parser.add_argument("--scratch", type=Path, default=None, help="where a download waits")
    parser.add_argument(
        "--capacity", type=int, default=None, help="the volume's size in bytes (Filesystem)"
    )
    parser.add_argument("--filesystem-overhead", type=float, default=0.055)
    parser.add_argument("--metrics-port", type=int, default=8443, help="0: serve no metrics")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kvd.importer import run as importer  # noqa: PLC0415 - only this command needs it

    program.configure_logging()
    if args.source == "http" and not args.url:
        raise program.CommandError("--source http needs --url")
    if args.source in ("registry", "pvc") and args.source_path is None:
        raise program.CommandError(f"--source {args.source} needs --source-path")
    return importer.main(
        importer.Job(
            kind=args.source,
            target=args.target,
            owner_uid=args.owner_uid,
            url=args.url,
            source_path=args.source_path,
            cert_dir=args.cert_dir,
            secret_dir=args.secret_dir,
            headers=tuple(args.header),
            scratch=args.scratch,
            capacity=args.capacity,
            overhead=args.filesystem_overhead,
            listen_port=args.metrics_port or None,
        )
    )
