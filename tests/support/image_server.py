"""A loopback HTTP(S) server that serves one file, for importer tests: optional basic auth,
TLS from a CA the test makes, a `gate` that holds the body half-way until the test has looked
at the progress, and a `truncate` that sends less than Content-Length says."""

from __future__ import annotations

import base64
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Served:
    file: Path
    auth: tuple[str, str] | None = None
    truncate: bool = False
    status: int = 200
    gate: threading.Event | None = None  # set by the test to let the second half through
    halfway: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            if served.auth is not None:
                want = "Basic " + base64.b64encode(":".join(served.auth).encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_error(401, "Unauthorized")
                    return
            if served.status != 200:
                self.send_error(served.status)
                return
            data = served.file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            body = data[: len(data) // 2] if served.truncate else data
            half = len(body) // 2
            try:
                self.wfile.write(body[:half])
                self.wfile.flush()
                served.halfway.set()
                if served.gate is not None:
                    served.gate.wait(60)
                self.wfile.write(body[half:])
            except (BrokenPipeError, ConnectionResetError):
                pass
            if served.truncate:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "2", "-subj", "/CN=kvd-test-ca")  # fmt: skip
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


@contextmanager
def serve(
    served: Served, *, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """Serve `served` on `host`; yields the URL of the file."""
    server = ThreadingHTTPServer((host, 0), _handler(served))
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://{host}:{server.server_address[1]}/images/{served.file.name}"
    finally:
        if served.gate is not None:
            served.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
