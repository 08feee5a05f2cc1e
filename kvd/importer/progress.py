"""Import progress, served as CDI's importer serves it: the Prometheus gauge
`kubevirt_cdi_import_progress_total{ownerUID="<uid>"}` (percent, 0 to 100) on port 8443.

CDI serves it over TLS with a throw-away certificate the controller does not verify; kvd serves
plain HTTP (the number is not a secret, and a certificate nobody checks protects nothing).
`scrape` is the controller's side: the value for one owner, or None.
"""

from __future__ import annotations

import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

METRIC: Final = "kubevirt_cdi_import_progress_total"
PORT: Final = 8443


class Progress:
    """Bytes done of a known total; thread-safe, read by the metrics server."""

    def __init__(self, owner_uid: str) -> None:
        self.owner_uid = owner_uid
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._fixed: float | None = None

    def start(self, total: int) -> None:
        with self._lock:
            self._total, self._done, self._fixed = total, 0, None

    def add(self, count: int) -> None:
        with self._lock:
            self._done += count

    def finish(self) -> None:
        with self._lock:
            self._fixed = 100.0

    def percent(self) -> float:
        with self._lock:
            if self._fixed is not None:
                return self._fixed
            if self._total <= 0:
                return 0.0
            return min(100.0, 100.0 * self._done / self._total)

    def exposition(self) -> str:
        return (
            f"# HELP {METRIC} The import progress in percentage\n"
            f"# TYPE {METRIC} counter\n"
            f'{METRIC}{{ownerUID="{self.owner_uid}"}} {self.percent():.2f}\n'
        )


def serve(progress: Progress, host: str = "", port: int = PORT) -> ThreadingHTTPServer:
    """Serve `progress` at /metrics in a daemon thread; the caller shuts the server down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = progress.exposition().encode()
            self.send_response(200 if self.path.startswith("/metrics") else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="progress", daemon=True).start()
    return server


_LINE = re.compile(rf'^{METRIC}\{{ownerUID="([^"]*)"\}}\s+([0-9.eE+-]+)\s*$', re.M)


def parse(text: str, owner_uid: str) -> float | None:
    for uid, value in _LINE.findall(text):
        if uid == owner_uid:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def scrape(ip: str, owner_uid: str, *, port: int = PORT, timeout: float = 2.0) -> float | None:
    """The progress the importer at pod IP `ip` reports, or None if it does not answer (not
    started yet, or already gone)."""
    host = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    try:
        with urllib.request.urlopen(f"http://{host}/metrics", timeout=timeout) as response:
            return parse(response.read().decode(errors="replace"), owner_uid)
    except OSError:
        return None
