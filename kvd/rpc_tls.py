"""TLS for kvd's gRPC services over TCP: a server's certificate, and a caller's trust in it.

A daemon that serves over the network (the handler's HandlerService, the controller's
ControllerService) is given a certificate and key file signed by the cluster's CA (the chart
mounts them; the local cluster signs them with its API server's CA,
`kvd.local.apiserver.tls.Certificates.issue`), and its callers verify it against that CA, the
host name or IP they dial included. Bearer tokens (`kvd.rpc_auth`) only ever travel inside it.

Certificates are short-lived on a real cluster, so the server reads its files again whenever
either changes (checked as each TLS handshake starts, which gRPC asks for): a renewed pair is
served to new connections without a restart, and a pair caught half-written is ignored until
it is whole. Files that do not make a pair at start are an error that names them.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path

import grpc

from kvd import logs

log = logs.get_logger(__name__)


class TLSError(Exception):
    """A certificate, key or CA file is missing, unreadable or not usable; the message says
    which."""


def server_credentials(cert_file: Path, key_file: Path) -> grpc.ServerCredentials:
    """Credentials serving `cert_file` (PEM, chain allowed) with `key_file`, reloaded when they
    change; TLSError when they do not make a usable pair."""
    reloader = _Reloader(cert_file, key_file)
    return grpc.dynamic_ssl_server_credentials(
        reloader.initial, reloader.fetch, require_client_authentication=False
    )


def channel_credentials(ca_file: Path) -> grpc.ChannelCredentials:
    """Credentials trusting the CA bundle in `ca_file` (PEM), and only it."""
    return channel_credentials_for(read_pem(ca_file, "CA bundle"))


def channel_credentials_for(ca_pem: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca_pem)


def read_pem(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TLSError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise TLSError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TLSError(f"{what} {path} holds no PEM data")
    return data


class _Reloader:
    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self._cert = cert_file
        self._key = key_file
        self._lock = threading.Lock()
        self._seen = self._stat()
        self.initial = self._load()

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        found = []
        for path in (self._cert, self._key):
            try:
                s = os.stat(path)
            except OSError:
                return ()
            found.append((s.st_ino, s.st_mtime_ns, s.st_size))
        return tuple(found)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert = read_pem(self._cert, "certificate file")
        key = read_pem(self._key, "key file")
        check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:  # gRPC would only find out at the first handshake, and then say little
            check.load_cert_chain(self._cert, self._key)
        except (ssl.SSLError, ValueError) as exc:
            raise TLSError(
                f"certificate {self._cert} and key {self._key} do not make a usable pair: {exc}"
            ) from None
        return grpc.ssl_server_certificate_configuration([(key, cert)])

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before a handshake: a new configuration, or None to keep the last."""
        with self._lock:
            seen = self._stat()
            if not seen or seen == self._seen:
                return None
            try:
                loaded = self._load()
            except TLSError as exc:
                log.warning("tls_reload_failed", error=str(exc))  # e.g. caught half-written
                return None
            self._seen = seen
            log.info("tls_reloaded", cert=str(self._cert))
            return loaded
