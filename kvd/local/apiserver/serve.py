"""Running the API server: bind, write the kubeconfig, serve until a signal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from aiohttp import web

from kvd import logs
from kvd.local.apiserver import auth
from kvd.local.apiserver.server import APIServer
from kvd.local.apiserver.workloads import services as workload_services

SHUTDOWN_SECONDS = 1.0

log = logs.get_logger(__name__)


async def serve(
    data_dir: Path,
    *,
    host: str,
    port: int,
    history: int = 100_000,
    kubelet_socket: Path | None = None,
    audit_log: Path | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    server = APIServer(
        data_dir, history=history, kubelet_socket=kubelet_socket, audit_log=audit_log
    )
    # Watches and `logs -f` never finish on their own: give handlers a moment, then cancel them
    # (kube-apiserver ends open watches on shutdown too; clients re-watch).
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    certs = server.certificates
    site = web.TCPSite(runner, host, port, ssl_context=certs.server_context())
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    workload_services.publish_apiserver(server.objects, host=host, port=bound)
    url = f"https://[{host}]:{bound}" if ":" in host else f"https://{host}:{bound}"
    kubeconfig = auth.write_kubeconfig(
        data_dir / "kubeconfig",
        server=url,
        credentials={"token": server.tokens.admin_token},
        ca=certs.ca_cert.read_bytes(),
    )
    print(f"kvd local apiserver: serving {url}", flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    log.info("apiserver_ready", url=url, kubeconfig=str(kubeconfig))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("apiserver_stopping")
    await runner.cleanup()
