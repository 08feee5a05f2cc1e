"""`kvd handler`: run the node's handler until SIGTERM/SIGINT, then mark the node unschedulable
(running VMs carry on; a restarted handler picks them up)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from kvd import address_file, logs, metrics, rpc_auth
from kvd.handler import service
from kvd.handler.agent import Handler, HandlerSettings
from kvd.kube.client import ApiError

log = logs.get_logger(__name__)


def run(
    settings: HandlerSettings,
    *,
    listen: str | None,
    token_file: Path | None,
    metrics_listen: str | None = None,
    address_path: Path | None = None,
) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    settings.launcher_dir.mkdir(parents=True, exist_ok=True)
    try:
        token = rpc_auth.load_token(token_file) if listen and token_file else None
    except rpc_auth.TokenError as exc:
        print(f"kvd handler: {exc}", file=sys.stderr, flush=True)
        return 1
    if listen and token is None:
        print("kvd handler: --listen needs --token-file", file=sys.stderr, flush=True)
        return 1
    handler = Handler(settings)
    running: service.RunningService | None = None
    scraped: metrics.RunningMetrics | None = None
    started = False
    try:
        if metrics_listen:  # before the node is touched: a taken port fails fast
            scraped = metrics.serve(handler.metrics, metrics_listen)
        handler.start()
        started = True  # the node is marked schedulable from here on
        if listen and token:
            running = service.serve(
                address=listen, locate=handler.locate, node_name=settings.node_name, token=token
            )
        if address_path is not None:  # for tools: the ports the ready line shows to people
            address_file.write(address_path, _addresses(listen, running, metrics_listen, scraped))
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
        running.stop(grace=1.0)
    if scraped is not None:
        scraped.stop()
    handler.stop()
    return 0


def _addresses(
    listen: str | None,
    running: service.RunningService | None,
    metrics_listen: str | None,
    scraped: metrics.RunningMetrics | None,
) -> dict[str, str]:
    found = {}
    if listen and running is not None:
        found["handlerService"] = address_file.bound(listen, running.port)
    if metrics_listen and scraped is not None:
        found["metrics"] = address_file.bound(metrics_listen, scraped.port)
    return found
