"""Where the bytes come from: an HTTP(S) URL streamed to a scratch file, a containerDisk's
files (mounted into the pod as an image volume), or another claim's disk (mounted too).

HTTP is checked as CDI checks it: the status must be 200 (a 4xx other than 408 and 429 is final:
no retry changes a missing or forbidden file), and the body must be as long as Content-Length
says (a short body is a truncated download, worth a retry). Basic auth takes the Secret's
`accessKeyId` and `secretKey` (files in the pod, never arguments, so they are not in `ps`);
`certConfigMap` adds the PEM bundles in a directory to the trusted CAs.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from kvd.importer.progress import Progress
from kvd.importer.result import ImportFailed

CHUNK: Final = 1 << 20
DISK_SUFFIXES: Final = (".qcow2", ".img", ".raw", ".iso")
FINAL_OK_STATUSES: Final = frozenset({408, 429})  # 4xx that a later try may get past


def _context(cert_dir: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cert_dir is not None:
        bundles = sorted(
            p for p in cert_dir.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        if not bundles:
            raise ImportFailed(f"no CA bundle in {cert_dir} (certConfigMap)", retryable=False)
        for bundle in bundles:
            try:
                context.load_verify_locations(cafile=str(bundle))
            except ssl.SSLError as exc:
                raise ImportFailed(
                    f"certConfigMap entry {bundle.name} is not a PEM CA bundle: {exc}",
                    retryable=False,
                ) from None
    return context


def _auth(secret_dir: Path | None) -> str | None:
    if secret_dir is None:
        return None
    try:
        user = (secret_dir / "accessKeyId").read_text().strip()
        password = (secret_dir / "secretKey").read_text().strip()
    except FileNotFoundError as exc:
        raise ImportFailed(
            f"secretRef lacks {Path(str(exc.filename)).name}: it needs accessKeyId and secretKey",
            retryable=False,
        ) from None
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def download(
    url: str,
    dest: Path,
    progress: Progress,
    *,
    cert_dir: Path | None = None,
    secret_dir: Path | None = None,
    headers: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> int:
    """Stream `url` into `dest`; returns the bytes written."""
    request = urllib.request.Request(url)
    auth = _auth(secret_dir)
    if auth:
        request.add_header("Authorization", auth)
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep:
            raise ImportFailed(f'extra header "{header}" is not "Name: value"', retryable=False)
        request.add_header(name.strip(), value.strip())
    context = _context(cert_dir) if url.startswith("https:") else None
    try:
        response = urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as exc:
        raise ImportFailed(
            f"Unable to connect to http data source: expected status code 200, got {exc.code}. "
            f"Status: {exc.code} {exc.reason}",
            retryable=exc.code >= 500 or exc.code in FINAL_OK_STATUSES,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        retryable = not isinstance(reason, ssl.SSLCertVerificationError)
        raise ImportFailed(
            f"Unable to connect to http data source: {reason}", retryable=retryable
        ) from None
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else 0
        progress.start(total)
        written = 0
        try:
            with dest.open("wb") as out:
                while chunk := response.read1(CHUNK):  # what came, not a full CHUNK
                    out.write(chunk)
                    written += len(chunk)
                    progress.add(len(chunk))
        except (http.client.IncompleteRead, OSError) as exc:
            raise ImportFailed(
                f"download of {url} broke off after {written} bytes: {exc}", retryable=True
            ) from None
    if total and written != total:
        raise ImportFailed(
            f"download of {url} is truncated: got {written} of {total} bytes", retryable=True
        )
    return written


def disk_in(directory: Path) -> Path:
    """The disk image of a containerDisk: the first file under its `disk/` (or the root)."""
    for base in (directory / "disk", directory):
        if base.is_dir():
            found = sorted(
                p for p in base.iterdir() if p.is_file() and p.name.lower().endswith(DISK_SUFFIXES)
            )
            if found:
                return found[0]
    raise ImportFailed(
        f"the image holds no disk: no {'/'.join(DISK_SUFFIXES)} file in /disk", retryable=False
    )


def claim_disk(path: Path) -> Path:
    """The disk of a cloned claim: its device (Block) or its disk.img (Filesystem)."""
    if path.is_dir():
        image = path / "disk.img"
        if not image.exists():
            raise ImportFailed(f"the source claim has no disk.img at {image}", retryable=False)
        return image
    if not path.exists():
        raise ImportFailed(f"the source claim is not at {path}", retryable=False)
    return path
