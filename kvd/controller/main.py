"""`kvd controller`: run until SIGTERM/SIGINT, or until the Lease is lost (exit 1: a replica that
lost its lease starts over, as KubeVirt's virt-controller does)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from kvd import address_file, logs, metrics
from kvd.controller.app import Controller, ControllerSettings
from kvd.kube.client import ApiError

log = logs.get_logger(__name__)

READY_WAIT = 5.0  # how long the ready line waits to say "leading" (a free lease is taken at once)


def run(
    settings: ControllerSettings,
    *,
    metrics_listen: str | None,
    address_path: Path | None = None,
) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller = Controller(settings)
    served: metrics.RunningMetrics | None = None
    try:
        controller.start()
        if metrics_listen:
            served = metrics.serve(controller.metrics, metrics_listen)
        if address_path is not None:  # for tools: the port the ready line shows to people
            listening = {}
            if metrics_listen and served is not None:
                listening["metrics"] = address_file.bound(metrics_listen, served.port)
            address_file.write(address_path, listening)
    except (OSError, TimeoutError, ApiError) as exc:
        if served is not None:
            served.stop()
        controller.stop()
        print(f"kvd controller: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    role = "leading" if controller.leading.wait(READY_WAIT) else "standby"
    where = f" (metrics on port {served.port})" if served else ""
    print(f"kvd controller: ready {controller.identity} ({role}){where}", flush=True)
    threading.Thread(target=_relay, args=(controller.lost, stop), daemon=True).start()
    stop.wait()
    code = 1 if controller.lost.is_set() else 0
    log.info("controller_stopping", identity=controller.identity, lost_lease=bool(code))
    if address_path is not None:
        address_file.remove(address_path)
    if served is not None:
        served.stop()
    controller.stop()
    return code


def _relay(lost: threading.Event, stop: threading.Event) -> None:
    lost.wait()
    stop.set()
