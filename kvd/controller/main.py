"""`kvd controller`: run until SIGTERM/SIGINT, or until the Lease is lost (exit 1: a replica that
lost its lease starts over, as KubeVirt's virt-controller does).

With `--listen`, every replica (leader or standby) also serves ControllerService over TLS,
from its warm caches (`kvd.controller.service`); with `--api-listen`, the aggregated API
`subresources.kubevirt.io` over HTTPS (`kvd.controller.subresources`). Both map onto one
`operations.Operations`."""

from __future__ import annotations

import functools
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from kvd import address_file, logs, metrics, rpc_server, rpc_tls
from kvd.controller import access, frontproxy, operations, service, subresources
from kvd.controller.app import Controller, ControllerSettings
from kvd.controller.handlers import Handlers
from kvd.kube import authenticator, reviews
from kvd.kube.client import ApiError, Raw

log = logs.get_logger(__name__)

READY_WAIT = 5.0  # how long the ready line waits to say "leading" (a free lease is taken at once)
REVIEW_TIMEOUT = 10.0  # a caller waits this long at most for each review


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """ControllerService: where it listens and its TLS pair; how it reaches the handlers."""

    listen: str | None
    cert_file: Path
    key_file: Path
    handler_ca_file: Path
    handler_token_file: Path
    handler_server_name: str = ""  # "" = check each handler's certificate against its address
    api_listen: str | None = None  # the aggregated API's HTTPS address


def run(
    settings: ControllerSettings,
    *,
    metrics_listen: str | None,
    address_path: Path | None = None,
    serving: ServiceSettings | None = None,
) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:  # unusable files fail fast, naming themselves
        credentials = (
            rpc_tls.server_credentials(serving.cert_file, serving.key_file) if serving else None
        )
    except rpc_tls.TLSError as exc:
        print(f"kvd controller: {exc}", file=sys.stderr, flush=True)
        return 1
    controller = Controller(settings)
    served: metrics.RunningMetrics | None = None
    running: rpc_server.RunningService | None = None
    api: subresources.RunningServer | None = None
    stops: list[Callable[[], None]] = []  # what started, to stop in reverse
    try:
        controller.start()
        if metrics_listen:
            served = metrics.serve(
                controller.metrics, metrics_listen, ready=functools.partial(_unready, controller)
            )
            stops.append(served.stop)
        if serving is not None and credentials is not None:
            running, api = _serve(controller, serving, credentials)
            if running is not None:
                stops.append(functools.partial(running.stop, grace=1.0))
            if api is not None:
                stops.append(api.stop)
        if address_path is not None:  # for tools: the ports the ready line shows to people
            address_file.write(
                address_path, _addresses(metrics_listen, served, serving, running, api)
            )
    except (OSError, TimeoutError, ApiError, ssl.SSLError) as exc:
        for stopping in reversed(stops):
            stopping()
        controller.stop()
        print(f"kvd controller: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    role = "leading" if controller.leading.wait(READY_WAIT) else "standby"
    where = f" (ControllerService on port {running.port})" if running else ""
    where += f" (subresources.kubevirt.io on port {api.port})" if api else ""
    where += f" (metrics on port {served.port})" if served else ""
    print(f"kvd controller: ready {controller.identity} ({role}){where}", flush=True)
    threading.Thread(target=_relay, args=(controller.lost, stop), daemon=True).start()
    stop.wait()
    code = 1 if controller.lost.is_set() else 0
    log.info("controller_stopping", identity=controller.identity, lost_lease=bool(code))
    if address_path is not None:
        address_file.remove(address_path)
    for stopping in reversed(stops):
        stopping()
    controller.stop()
    return code


def _serve(
    controller: Controller, serving: ServiceSettings, credentials: grpc.ServerCredentials
) -> tuple[rpc_server.RunningService | None, subresources.RunningServer | None]:
    raw = Raw(controller.api, timeout=REVIEW_TIMEOUT)
    # the API server's own audience: users' tokens are the ones their kubeconfig holds
    users = authenticator.TokenAuthenticator(functools.partial(reviews.token_review, raw))
    checks = access.Access(users.authenticate, functools.partial(reviews.access_review, raw))
    verbs = operations.Operations(
        access=checks,
        raw=raw,
        vmis=controller.vmis.get,
        handlers=Handlers(
            controller.nodes.get,
            ca_file=serving.handler_ca_file,
            token_file=serving.handler_token_file,
            server_name=serving.handler_server_name,
        ),
    )
    running = None
    if serving.listen:
        servicer = service.ControllerServicer(access=checks, operations=verbs)
        running = service.serve(address=serving.listen, servicer=servicer, credentials=credentials)
    if not serving.api_listen:
        return running, None
    try:
        api = subresources.serve(
            address=serving.api_listen,
            operations=verbs,
            files=subresources.ServingFiles(serving.cert_file, serving.key_file),
            proxy=frontproxy.FrontProxy(lambda: _front_proxy_config(raw)),
        )
    except BaseException:
        if running is not None:
            running.stop()
        raise
    return running, api


def _front_proxy_config(raw: Raw) -> dict[str, Any] | None:
    try:
        return raw.get(frontproxy.PATH)
    except ApiError as exc:
        if exc.not_found:
            return None
        raise


def _addresses(
    metrics_listen: str | None,
    served: metrics.RunningMetrics | None,
    serving: ServiceSettings | None,
    running: rpc_server.RunningService | None,
    api: subresources.RunningServer | None,
) -> dict[str, str]:
    listening = {}
    if metrics_listen and served is not None:
        listening["metrics"] = address_file.bound(metrics_listen, served.port)
    if serving is not None and serving.listen and running is not None:
        listening["controllerService"] = address_file.bound(serving.listen, running.port)
    if serving is not None and serving.api_listen and api is not None:
        listening["subresources"] = address_file.bound(serving.api_listen, api.port)
    return listening


def _unready(controller: Controller) -> str | None:
    """Why this replica should take no traffic (`/readyz`), None when it may: serving starts
    only once its caches are synced, so only a lost lease (the process is on its way out)."""
    return "lost the leader lease; exiting" if controller.lost.is_set() else None


def _relay(lost: threading.Event, stop: threading.Event) -> None:
    lost.wait()
    stop.set()
