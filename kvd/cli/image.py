"""`kvd image …`: the local image store, which the local node reads instead of pulling.

  kvd image import NAME FILE                         a qcow2 or raw disk (containerDisk), or
                                                     a containerDisk image saved as an OCI or
                                                     docker archive (its /disk/ file)
  kvd image import NAME --kernel K [--initrd I]      a kernel-boot image (kernelBoot.container):
        [--kernel-path P] [--initrd-path P]          at /boot/vmlinuz, /boot/initrd.img, or P
  kvd image list                                     REFERENCE KIND FORMAT SIZE IMPORTED SOURCE
  kvd image rm NAME...

NAME is an image reference as a pod spec writes it (`kvd-demo` is `kvd-demo:latest`). Importing
the same NAME again replaces the image atomically, or leaves it alone when the content is
identical. `--store DIR` (default $KVD_IMAGE_STORE or /var/lib/kvd/images) picks the store.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from kvd import logs
from kvd.cli import program
from kvd.local import images
from kvd.local.images import ImageError, ImageNotFound, ImageStore, StoredImage, archive

PREFIX = "kvd image"
COLUMNS = ("REFERENCE", "KIND", "FORMAT", "SIZE", "IMPORTED", "SOURCE")


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "image",
        help="the local image store (containerDisk and kernel-boot images)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _store_option(parser, default=images.DEFAULT_ROOT)
    commands = parser.add_subparsers(dest="image_command", metavar="COMMAND", required=True)

    imp = commands.add_parser(
        "import",
        help="import a disk, or a kernel and initrd, under an image name",
        description="Import a qcow2/raw disk (FILE), the disk of a containerDisk image saved as "
        "an OCI or docker archive (FILE: `podman save`, `docker save`, `podman save --format "
        "oci-archive`), or a kernel-boot image (--kernel, --initrd) as image NAME. The disk is "
        "copied into the store and checked there.",
    )
    imp.add_argument("name", metavar="NAME", help="image reference, e.g. kvd-demo or x/y:1.0")
    imp.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        nargs="?",
        help="qcow2 or raw disk, or an OCI/docker archive of a containerDisk image",
    )
    imp.add_argument("--kernel", type=Path, help="kernel (vmlinuz): a kernel-boot image")
    imp.add_argument("--initrd", type=Path, help="initrd to go with --kernel")
    imp.add_argument(
        "--kernel-path",
        metavar="PATH",
        help="where the kernel is in the image, as kernelBoot.container.kernelPath names it "
        "(default /boot/vmlinuz)",
    )
    imp.add_argument(
        "--initrd-path",
        metavar="PATH",
        help="where the initrd is in the image, as kernelBoot.container.initrdPath names it "
        "(default /boot/initrd.img)",
    )
    _store_option(imp)
    imp.set_defaults(run=run_import, parser=imp)

    ls = commands.add_parser("list", aliases=["ls"], help="list the stored images")
    _store_option(ls)
    ls.set_defaults(run=run_list)

    rm = commands.add_parser("rm", help="remove images from the store")
    rm.add_argument("names", metavar="NAME", nargs="+")
    _store_option(rm)
    rm.set_defaults(run=run_rm)


def _store_option(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    # On `image` and on each subcommand, so it works before or after the subcommand's name;
    # SUPPRESS keeps a subcommand from overwriting the value given before it.
    parser.add_argument(
        "--store",
        type=Path,
        default=default,
        metavar="DIR",
        help="the image store (default: $KVD_IMAGE_STORE or /var/lib/kvd/images)",
    )


def run_import(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.kernel is None):
        args.parser.error("give either FILE (a disk) or --kernel (a kernel-boot image)")
    if args.initrd is not None and args.kernel is None:
        args.parser.error("--initrd goes with --kernel")
    if args.kernel_path is not None and args.kernel is None:
        args.parser.error("--kernel-path goes with --kernel")
    if args.initrd_path is not None and args.initrd is None:
        args.parser.error("--initrd-path goes with --initrd")
    paths = {
        key: value
        for key, value in (("kernel_path", args.kernel_path), ("initrd_path", args.initrd_path))
        if value is not None
    }

    def action(store: ImageStore) -> None:
        before = store.get(args.name)
        if args.kernel is not None:
            image = store.import_kernel(args.name, kernel=args.kernel, initrd=args.initrd, **paths)
        elif archive.is_archive(args.file):
            image = store.import_archive(args.name, args.file)
        else:
            image = store.import_disk(args.name, args.file)
        shown = images.familiar(image.reference)
        if before is not None and before.root == image.root:
            print(f"{shown}: unchanged (identical to the image imported {_time(image)})")
        else:
            what = ", ".join(x for x in (image.kind, image.format, _size(image.size)) if x)
            print(f"imported {shown} ({what})")

    return _guarded(args, action)


def run_list(args: argparse.Namespace) -> int:
    def action(store: ImageStore) -> None:
        rows = [COLUMNS] + [
            (
                images.familiar(i.reference),
                i.kind,
                i.format or "-",
                _size(i.size),
                _time(i),
                _source(i),
            )
            for i in store.list()
        ]
        widths = [max(len(row[c]) for row in rows) for c in range(len(COLUMNS))]
        for row in rows:
            print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    return _guarded(args, action)


def run_rm(args: argparse.Namespace) -> int:
    missing: list[str] = []

    def action(store: ImageStore) -> None:
        for name in args.names:
            if store.remove(name):
                print(f"removed {images.familiar(name)}")
            else:
                missing.append(name)
        if missing:
            raise ImageError(
                "; ".join(
                    f'image "{n}" is not in the local image store ({store.root})' for n in missing
                )
            )

    return _guarded(args, action)


def _guarded(args: argparse.Namespace, action: Callable[[ImageStore], None]) -> int:
    """Run `action` on the chosen store; every failure is one line on stderr and exit 1."""
    _configure_logging()
    try:
        action(ImageStore(args.store))
    except (ImageError, ImageNotFound) as exc:
        return _fail(str(exc))
    except OSError as exc:  # the store itself: unwritable, full, …
        where = f"{exc.filename}: " if exc.filename else ""
        hint = ""
        if isinstance(exc, PermissionError):
            hint = f" (the image store {args.store} is root's; run as root or pass --store DIR)"
        return _fail(f"{where}{exc.strerror or exc}{hint}")
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    return 0


def _fail(message: str, *, code: int = 1) -> int:
    print(f"{PREFIX}: {message}", file=sys.stderr)
    return code


def _configure_logging() -> None:
    # A command for people: the store's info lines (image_imported, …) would only repeat what
    # is printed, so warnings and up unless KVD_LOG_LEVEL asks for more.
    if "KVD_LOG_LEVEL" in os.environ:
        program.configure_logging()
    else:
        logs.configure(level="warning")


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}TiB"


def _source(image: StoredImage) -> str:
    """Where the image was imported from: the file, and for an archive the disk's path in it."""
    source = image.source
    if not source:
        return "-"
    inside = f" ({source['path']})" if "path" in source else ""
    return f"{source['format']}:{source['file']}{inside}"


def _time(image: StoredImage) -> str:
    return image.imported.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
