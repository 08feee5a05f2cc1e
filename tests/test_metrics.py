"""kvd.metrics served over real HTTP and read back with prometheus_client's own parser, as
Prometheus would scrape it."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kvd import metrics
from kvd.kube.workqueue import WorkQueue
from tests.support.clock import FakeClock

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=100.0)


@pytest.fixture
def daemon(clock: FakeClock) -> metrics.DaemonMetrics:
    return metrics.DaemonMetrics("handler", clock=clock)


@pytest.fixture
def running(daemon: metrics.DaemonMetrics) -> Iterator[metrics.RunningMetrics]:
    served = metrics.serve(daemon, "127.0.0.1:0")
    yield served
    served.stop()


def get(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    """(status, content type, body) of a GET."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def scrape(port: int) -> Samples:
    status, content_type, body = get(port)
    assert status == 200, body
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def phases(samples: Samples) -> dict[str, float]:
    return {dict(labels)["phase"]: v for (name, labels), v in samples.items() if name == VMIS}


VMIS = "kvd_handler_vmis"
DURATION = "kvd_handler_reconcile_duration_seconds"


def test_every_phase_is_exported_counted_at_scrape_time(
    daemon: metrics.DaemonMetrics, running: metrics.RunningMetrics
) -> None:
    cache = [{"status": {"phase": "Running"}}, {"status": {"phase": "Running"}}, {}]
    daemon.track_phases(lambda: metrics.vmi_phases(cache))
    assert phases(scrape(running.port)) == {
        "Pending": 1,  # no phase yet
        "Scheduling": 0,
        "Scheduled": 0,
        "Running": 2,
        "Succeeded": 0,
        "Failed": 0,
        "Unknown": 0,
    }
    cache[:] = [{"status": {"phase": "Failed"}}, {"status": {"phase": "WaitingForSync"}}]
    assert phases(scrape(running.port)) == {
        **dict.fromkeys(metrics.PHASES, 0),
        "Failed": 1,
        "WaitingForSync": 1,  # a phase kvd does not know yet still counts
    }


def test_no_vmis_still_exports_every_phase_as_zero(
    daemon: metrics.DaemonMetrics, running: metrics.RunningMetrics
) -> None:
    assert phases(scrape(running.port)) == {}  # not tracked: nothing claims a count
    daemon.track_phases(list)
    assert phases(scrape(running.port)) == dict.fromkeys(metrics.PHASES, 0)


def test_every_vm_status_is_exported_counted_at_scrape_time(
    daemon: metrics.DaemonMetrics, running: metrics.RunningMetrics
) -> None:
    cache = [{"status": {"printableStatus": "Running"}}, {"status": {"printableStatus": "Running"}}]
    cache.append({})  # not reached by the controller yet
    daemon.track_vm_statuses(lambda: metrics.vm_statuses(cache))
    samples = {
        dict(labels)["printable_status"]: v
        for (name, labels), v in scrape(running.port).items()
        if name == "kvd_handler_vms"
    }
    assert samples == {**dict.fromkeys(metrics.VM_STATUSES, 0), "Running": 2, "Unknown": 1}
    assert {"Stopped", "CrashLoopBackOff", "ErrorPvcNotFound"} <= set(samples)


def test_reconcile_durations_by_outcome(
    daemon: metrics.DaemonMetrics, running: metrics.RunningMetrics, clock: FakeClock
) -> None:
    before = scrape(running.port)
    for outcome in metrics.OUTCOMES:  # present, at 0, before the first reconcile
        assert before[(f"{DURATION}_count", (("outcome", outcome),))] == 0

    daemon.observe_reconcile(0.003, outcome="ok")
    with daemon.time_reconcile():
        clock.advance(0.5)
    with daemon.time_reconcile() as timing:
        clock.advance(2.0)
        timing.requeue = True
    with pytest.raises(RuntimeError, match="conflict"), daemon.time_reconcile():
        clock.advance(7.0)
        raise RuntimeError("conflict")

    samples = scrape(running.port)
    count = {o: samples[(f"{DURATION}_count", (("outcome", o),))] for o in metrics.OUTCOMES}
    total = {o: samples[(f"{DURATION}_sum", (("outcome", o),))] for o in metrics.OUTCOMES}
    assert count == {"ok": 2, "requeue": 1, "error": 1}
    assert total == pytest.approx({"ok": 0.503, "requeue": 2.0, "error": 7.0})
    # the 0.5 s reconcile is above the 0.25 s bucket, within the 0.5 s one
    assert samples[(f"{DURATION}_bucket", (("le", "0.25"), ("outcome", "ok")))] == 1
    assert samples[(f"{DURATION}_bucket", (("le", "0.5"), ("outcome", "ok")))] == 2


def test_an_unknown_outcome_is_refused(daemon: metrics.DaemonMetrics) -> None:
    with pytest.raises(ValueError, match="outcome"):
        daemon.observe_reconcile(1.0, outcome="conflict")


def test_queue_depth_is_read_from_the_queue_at_scrape_time(
    daemon: metrics.DaemonMetrics, running: metrics.RunningMetrics
) -> None:
    queue: WorkQueue[str] = WorkQueue()
    daemon.track_queue(lambda: len(queue))
    depth = ("kvd_handler_workqueue_depth", ())
    assert scrape(running.port)[depth] == 0
    queue.add("default/a")
    queue.add("default/b")
    queue.add("default/a")  # queued once
    assert scrape(running.port)[depth] == 2
    assert queue.get() == "default/a"  # being processed: no longer waiting
    assert scrape(running.port)[depth] == 1


def test_the_process_is_described_too(running: metrics.RunningMetrics) -> None:
    names = {name for name, _ in scrape(running.port)}
    assert {"process_resident_memory_bytes", "python_info"} <= names


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/", id="root"),
        pytest.param("/metricsx", id="prefix"),
        pytest.param("/metrics/extra", id="below"),
        pytest.param("/favicon.ico", id="favicon"),
    ],
)
def test_other_paths_are_not_found(running: metrics.RunningMetrics, path: str) -> None:
    status, _, body = get(running.port, path)
    assert status == 404
    assert "/metrics" in body


def test_the_probes_answer_beside_the_metrics(daemon: metrics.DaemonMetrics) -> None:
    problem: list[str] = ["caches not synced"]
    served = metrics.serve(daemon, "127.0.0.1:0", ready=lambda: problem[0] if problem else None)
    try:
        assert get(served.port, "/healthz")[0::2] == (200, "ok\n")
        assert get(served.port, "/readyz")[0::2] == (503, "not ready: caches not synced\n")
        problem.clear()
        assert get(served.port, "/readyz")[0::2] == (200, "ok\n")
    finally:
        served.stop()


def test_without_a_check_the_daemon_is_always_ready(running: metrics.RunningMetrics) -> None:
    assert get(running.port, "/readyz")[0] == 200
    assert get(running.port, "/healthz")[0] == 200


def test_daemons_in_one_process_keep_their_own_metrics() -> None:
    first, second = metrics.DaemonMetrics("handler"), metrics.DaemonMetrics("handler")
    controller = metrics.DaemonMetrics("controller")
    first.observe_reconcile(1.0, outcome="ok")
    served = [metrics.serve(m, "127.0.0.1:0") for m in (first, second, controller)]
    try:
        a, b, c = (scrape(s.port) for s in served)
    finally:
        for s in served:
            s.stop()
    ok = (f"{DURATION}_count", (("outcome", "ok"),))
    assert (a[ok], b[ok]) == (1, 0)
    assert ("kvd_controller_reconcile_duration_seconds_count", (("outcome", "ok"),)) in c
    assert not any(name.startswith("kvd_handler_") for name, _ in c)


def test_stop_closes_the_port(daemon: metrics.DaemonMetrics) -> None:
    served = metrics.serve(daemon, "127.0.0.1:0")
    assert scrape(served.port)
    served.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", served.port), timeout=5).close()


def test_a_taken_port_or_a_bad_address_is_an_oserror(
    daemon: metrics.DaemonMetrics, running: metrics.RunningMetrics
) -> None:
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{running.port}"):
        metrics.serve(daemon, f"127.0.0.1:{running.port}")
    for address in ("9090", "localhost:http", ":9090"):
        with pytest.raises(OSError, match="expected HOST:PORT"):
            metrics.serve(daemon, address)
