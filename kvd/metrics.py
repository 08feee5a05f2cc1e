"""Prometheus metrics of kvd's daemons (controller, handler), served on `GET /metrics`.

Each daemon owns a `DaemonMetrics` with its own `CollectorRegistry` rather than the process-wide
default one, so several daemons (or tests) in one process never collide over metric names. Names
are `kvd_<component>_...`; the registry also carries the usual `process_*` and `python_*`
collectors, as the default registry would.

What a reconcile loop measures about itself is pushed (`observe_reconcile`, `time_reconcile`);
what it holds is read when scraped (`track_queue`, `track_phases`, `track_vm_statuses`), from the
work queue and the informer caches, so there is nothing to keep in step. Every VMI phase and VM
printableStatus is always exported, 0 when no VMI or VM is in it, so a query never sees a series
appear out of nowhere.

`serve` is a small threaded WSGI server around prometheus_client's app: the client's own
`start_http_server` answers every path with the metrics, and this answers 404 off `/metrics`,
except for the kubelet's probes: `/healthz` (200 while the process serves) and `/readyz` (200
when the daemon's `ready` check passes, 503 with the reason otherwise).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import wsgiref.simple_server
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, get_args
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    exposition,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kvd import logs
from kvd.api import phases
from kvd.api import vm as vmtypes

log = logs.get_logger(__name__)

# Every phase a VMI can be counted in; an unset phase is counted as Pending.
PHASES = tuple(p for p in phases.NAMES if p != phases.UNSET)
# Every printableStatus a VM can be counted in (KubeVirt's, as kvd.api declares them).
VM_STATUSES: tuple[str, ...] = get_args(vmtypes.PrintableStatus)
OUTCOMES = ("ok", "error", "requeue")
PATH = "/metrics"
HEALTH = "/healthz"
READY = "/readyz"
STOP_POLL = 0.1  # how soon `stop()` returns (the server looks this often whether to end)


@dataclass
class Timing:
    """What `time_reconcile` yields: set `requeue` when the reconcile asked to look again."""

    requeue: bool = False


class DaemonMetrics:
    def __init__(self, component: str, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.component = component
        self.registry = CollectorRegistry()
        self._clock = clock
        prefix = f"kvd_{component}"
        self._reconcile = Histogram(
            f"{prefix}_reconcile_duration_seconds",
            "Time one reconcile of one key took, by how it ended.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:  # present from the start, so rate() sees the first one
            self._reconcile.labels(outcome=outcome)
        self._live = _Live(prefix)
        self.registry.register(self._live)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe_reconcile(self, seconds: float, *, outcome: str) -> None:
        if outcome not in OUTCOMES:  # a label value per call would be unbounded
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        self._reconcile.labels(outcome=outcome).observe(seconds)

    @contextlib.contextmanager
    def time_reconcile(self) -> Iterator[Timing]:
        """Records the block's duration: `error` if it raised (the exception goes on),
        `requeue` if it set `timing.requeue`, `ok` otherwise."""
        began = self._clock()
        timing = Timing()
        try:
            yield timing
        except BaseException:
            self.observe_reconcile(self._clock() - began, outcome="error")
            raise
        self.observe_reconcile(self._clock() - began, outcome="requeue" if timing.requeue else "ok")

    def track_queue(self, depth: Callable[[], int]) -> None:
        """Export `kvd_<component>_workqueue_depth`, read from `depth()` at each scrape."""
        self._live.depth = depth

    def track_phases(self, phases: Callable[[], Iterable[str]]) -> None:
        """Export `kvd_<component>_vmis{phase=...}`, counted from `phases()` (one phase per VMI,
        "" for none yet) at each scrape."""
        self._live.phases = phases

    def track_vm_statuses(self, statuses: Callable[[], Iterable[str]]) -> None:
        """Export `kvd_<component>_vms{printable_status=...}`, counted from `statuses()` (one
        printableStatus per VirtualMachine, "" for none yet) at each scrape."""
        self._live.vm_statuses = statuses


def vmi_phases(vmis: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The phase of each VMI object (for `track_phases` over an informer cache)."""
    for vmi in vmis:
        yield phase_of(vmi)


def phase_of(vmi: Mapping[str, Any]) -> str:
    """One VMI object's phase (for `Informer.project`: it only reads the object)."""
    return str((vmi.get("status") or {}).get("phase") or "")


def printable_status_of(vm: Mapping[str, Any]) -> str:
    """One VM object's printableStatus (for `Informer.project`)."""
    return str((vm.get("status") or {}).get("printableStatus") or "")


def vm_statuses(vms: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The printableStatus of each VM object (for `track_vm_statuses`)."""
    for vm in vms:
        yield str((vm.get("status") or {}).get("printableStatus") or "")


class _Live(Collector):
    """The metrics read at scrape time."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.depth: Callable[[], int] | None = None
        self.phases: Callable[[], Iterable[str]] | None = None
        self.vm_statuses: Callable[[], Iterable[str]] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.depth is not None:
            yield GaugeMetricFamily(
                f"{self.prefix}_workqueue_depth",
                "Keys waiting in the work queue (not those being reconciled or delayed).",
                value=self.depth(),
            )
        if self.phases is not None:
            counts = Counter(phase or phases.PENDING for phase in self.phases())
            family = GaugeMetricFamily(
                f"{self.prefix}_vmis", "VMIs in the informer cache, by phase.", labels=["phase"]
            )
            for phase in [*PHASES, *sorted(counts.keys() - set(PHASES))]:
                family.add_metric([phase], counts.get(phase, 0))
            yield family
        if self.vm_statuses is not None:
            # a VM the controller has not reached yet has no printableStatus: counted as Unknown
            counts = Counter(s or "Unknown" for s in self.vm_statuses())
            family = GaugeMetricFamily(
                f"{self.prefix}_vms",
                "VirtualMachines in the informer cache, by printableStatus.",
                labels=["printable_status"],
            )
            for shown in [*VM_STATUSES, *sorted(counts.keys() - set(VM_STATUSES))]:
                family.add_metric([shown], counts.get(shown, 0))
            yield family


# --- serving ---------------------------------------------------------------------------------


@dataclass
class RunningMetrics:
    """A metrics endpoint being served; `stop()` closes it."""

    port: int
    _server: wsgiref.simple_server.WSGIServer
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(
    metrics: DaemonMetrics, address: str, *, ready: Callable[[], str | None] | None = None
) -> RunningMetrics:
    """Serve `metrics` on `GET /metrics` at `address` ("HOST:PORT", "[v6]:PORT"; port 0 for any
    free port), and the probes on `/healthz` and `/readyz`, on a daemon thread; started when
    this returns. `ready()` returns None when ready, else why not (None: always ready)."""
    host, port = _split(address)
    server_class = _Server6 if ":" in host else _Server
    app = exposition.make_wsgi_app(metrics.registry)

    def plain(start_response: StartResponse, status: str, body: str) -> list[bytes]:
        # a new header list each time: wsgiref adds Content-Length to the one it is given
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [body.encode()]

    def only_metrics(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == HEALTH:
            return plain(start_response, "200 OK", "ok\n")
        if path == READY:
            problem = ready() if ready is not None else None
            if problem is None:
                return plain(start_response, "200 OK", "ok\n")
            return plain(start_response, "503 Service Unavailable", f"not ready: {problem}\n")
        if path != PATH:
            return plain(start_response, "404 Not Found", f"not found; metrics are at {PATH}\n")
        body: Iterable[bytes] = app(environ, start_response)
        return body

    try:
        server = wsgiref.simple_server.make_server(
            host, port, only_metrics, server_class=server_class, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise OSError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    thread = threading.Thread(
        target=server.serve_forever, args=(STOP_POLL,), name="metrics", daemon=True
    )
    thread.start()
    bound = int(server.server_address[1])
    log.info("metrics_serving", component=metrics.component, address=address, port=bound)
    return RunningMetrics(bound, server, thread)


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise OSError(f"cannot listen on {address!r}: expected HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


class _Server(ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True  # a slow scraper never holds up stop()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not worth a log line
