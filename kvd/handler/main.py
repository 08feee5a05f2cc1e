"""`kvd handler`: run the node's handler until SIGTERM/SIGINT, then mark the node unschedulable
(running VMs carry on; a restarted handler picks them up)."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from kvd import address_file, logs, metrics, rpc_auth, rpc_server, rpc_tls
from kvd.handler import advertise, auth, service
from kvd.handler.agent import Handler, HandlerSettings
from kvd.kube import authenticator, reviews
from kvd.kube.client import ApiError, Raw

log = logs.get_logger(__name__)

REVIEW_TIMEOUT = 10.0  # a caller waits this long at most for its token to be reviewed


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """HandlerService: where it listens, its TLS pair, and whom it admits."""

    listen: str
    cert_file: Path
    key_file: Path
    allowed_users: tuple[str, ...]
    audience: str = rpc_auth.HANDLER_AUDIENCE
    advertise_host: str | None = None


def run(
    settings: HandlerSettings,
    *,
    serving: ServiceSettings | None,
    metrics_listen: str | None = None,
    address_path: Path | None = None,
) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    settings.launcher_dir.mkdir(parents=True, exist_ok=True)
    try:  # before the node is touched: unusable files fail fast, naming themselves
        credentials = _credentials(serving)
    except (rpc_tls.TLSError, advertise.AdvertiseError) as exc:
        print(f"kvd handler: {exc}", file=sys.stderr, flush=True)
        return 1
    handler = Handler(settings)
    running: rpc_server.RunningService | None = None
    scraped: metrics.RunningMetrics | None = None
    started = False
    try:
        if metrics_listen:  # before the node is touched: a taken port fails fast
            scraped = metrics.serve(handler.metrics, metrics_listen)
        handler.start()
        started = True  # the node is marked schedulable from here on
        if serving is not None and credentials is not None:
            running = _serve(handler, serving, credentials)
        if address_path is not None:  # for tools: the ports the ready line shows to people
            address_file.write(address_path, _addresses(serving, running, metrics_listen, scraped))
    except (OSError, TimeoutError, ApiError) as exc:
        if running is not None:
            running.stop()
        if scraped is not None:
            scraped.stop()
        handler.stop(unschedulable=started)
        print(f"kvd handler: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    # for people (`kvd local up` shows it); programs read the address file instead
    where = f" (HandlerService on port {running.port})" if running else ""
    where += f" (metrics on port {scraped.port})" if scraped else ""
    print(f"kvd handler: ready {settings.node_name}{where}", flush=True)
    stop.wait()
    log.info("handler_stopping", node=settings.node_name)
    if address_path is not None:
        address_file.remove(address_path)
    if running is not None:
        with contextlib.suppress(ApiError):  # a stale address only refuses connections
            advertise.withdraw(handler.raw, settings.node_name)
        running.stop(grace=1.0)
    if scraped is not None:
        scraped.stop()
    handler.stop()
    return 0


def _credentials(serving: ServiceSettings | None) -> grpc.ServerCredentials | None:
    if serving is None:
        return None
    advertise.address(serving.listen, 1, serving.advertise_host)  # one to advertise, or say so
    return rpc_tls.server_credentials(serving.cert_file, serving.key_file)


def _serve(
    handler: Handler, serving: ServiceSettings, credentials: grpc.ServerCredentials
) -> rpc_server.RunningService:
    raw = Raw(handler.api, timeout=REVIEW_TIMEOUT)
    review = functools.partial(reviews.token_review, raw, audiences=(serving.audience,))
    check = auth.CallerCheck(
        authenticator.TokenAuthenticator(review).authenticate, serving.allowed_users
    )
    log.info("handler_service_admits", users=list(serving.allowed_users), audience=serving.audience)
    running = service.serve(
        address=serving.listen,
        locate=handler.locate,
        node_name=handler.node_name,
        check=check.check,
        credentials=credentials,
    )
    try:  # where the controller finds it
        where = advertise.address(serving.listen, running.port, serving.advertise_host)
        advertise.publish(handler.raw, handler.node_name, where)
    except ApiError:
        running.stop()
        raise
    return running


def _addresses(
    serving: ServiceSettings | None,
    running: rpc_server.RunningService | None,
    metrics_listen: str | None,
    scraped: metrics.RunningMetrics | None,
) -> dict[str, str]:
    found = {}
    if serving is not None and running is not None:
        found["handlerService"] = address_file.bound(serving.listen, running.port)
    if metrics_listen and scraped is not None:
        found["metrics"] = address_file.bound(metrics_listen, scraped.port)
    return found
