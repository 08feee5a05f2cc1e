"""The importer's one run: fetch, check, write, report (`result`), serving progress meanwhile.

Exit 0 on success; 1 on a failure the controller may retry by restarting the pod; 2 on one it
should not (the last log line says which, and why).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from kvd import logs
from kvd.importer import convert, progress, source
from kvd.importer.result import ImportFailed, Outcome

log = logs.get_logger(__name__)

DISK_IMAGE = "disk.img"


@dataclass(frozen=True, kw_only=True)
class Job:
    kind: str  # http | registry | pvc | blank
    target: Path  # a Filesystem volume's directory, or the Block device
    owner_uid: str
    url: str = ""
    source_path: Path | None = None  # registry: the image's mount; pvc: the source claim's
    cert_dir: Path | None = None
    secret_dir: Path | None = None
    headers: tuple[str, ...] = ()
    scratch: Path | None = None
    capacity: int | None = None  # the volume's bytes (a Filesystem volume's size is not statvfs)
    overhead: float = 0.055
    listen_port: int | None = progress.PORT  # None: serve no metrics


def run(job: Job) -> Outcome:
    tracker = progress.Progress(job.owner_uid)
    server = progress.serve(tracker, port=job.listen_port) if job.listen_port is not None else None
    try:
        _import(job, tracker)
    except ImportFailed as exc:
        return Outcome(succeeded=False, message=exc.message, retryable=exc.retryable)
    except Exception as exc:
        log.exception("importer_crashed")
        return Outcome(succeeded=False, message=f"{type(exc).__name__}: {exc}", retryable=True)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    tracker.finish()
    return Outcome(succeeded=True, message="Import Complete")


def _import(job: Job, tracker: progress.Progress) -> None:
    block = job.target.is_block_device()
    if not block and not job.target.is_dir():
        raise ImportFailed(f"the target volume is not mounted at {job.target}", retryable=True)
    dest = job.target if block else job.target / DISK_IMAGE
    limit = _block_size(job.target) if block else _usable(job)
    if job.kind == "blank":
        convert.blank(dest, size=limit)
        return
    scratch_file: Path | None = None
    try:
        if job.kind == "http":
            scratch_dir = job.scratch or (job.target if not block else Path("/tmp"))
            scratch_file = scratch_dir / ".kvd-import.tmp"
            size = source.download(
                job.url,
                scratch_file,
                tracker,
                cert_dir=job.cert_dir,
                secret_dir=job.secret_dir,
                headers=job.headers,
            )
            log.info("downloaded", url=job.url, bytes=size)
            src, follow = scratch_file, None
        elif job.kind == "registry":
            if job.source_path is None:
                raise ImportFailed("registry import without the image mounted", retryable=False)
            src, follow = source.disk_in(job.source_path), tracker
        elif job.kind == "pvc":
            if job.source_path is None:
                raise ImportFailed("clone without the source claim mounted", retryable=False)
            src, follow = source.claim_disk(job.source_path), tracker
        else:
            raise ImportFailed(f"unknown source {job.kind}", retryable=False)
        image = convert.inspect(src, limit=limit)
        convert.write(src, image, dest, follow, size=None if block else limit)
        log.info("converted", format=image.format, virtual_size=image.virtual_size, dest=str(dest))
    finally:
        if scratch_file is not None:
            scratch_file.unlink(missing_ok=True)


def _usable(job: Job) -> int:
    capacity = job.capacity
    if capacity is None:
        capacity = shutil.disk_usage(job.target).total
    return convert.usable_size(capacity, job.overhead)


def _block_size(device: Path) -> int:
    fd = os.open(device, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def main(job: Job) -> int:
    outcome = run(job)
    if outcome.succeeded:
        log.info("import_succeeded")
    else:
        log.error("import_failed", message=outcome.message, retryable=outcome.retryable)
    sys.stderr.flush()
    print(outcome.line(), flush=True)  # the last line: what the controller reads
    if outcome.succeeded:
        return 0
    return 1 if outcome.retryable else 2
