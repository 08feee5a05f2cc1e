"""kvd.kube.leader against a real `kvd local apiserver`: one leader at a time, takeover when the
leader dies, giving up a lease someone else took, and what it adds to the official client's
leaderelection (our ApiClient, short periods, an unreachable server, a missing namespace)."""

from __future__ import annotations

import contextlib
import datetime
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.config
import pytest
import structlog
import yaml
from kubernetes import client as k8s

from kvd.kube import client, leader
from tests.local.apiserver.conftest import Server, start_server
from tests.support import metrics
from tests.support.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration  # starts a kvd local apiserver and candidate processes

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{}/leases"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")

# A candidate in its own process, so that the test can kill -9 it.
CANDIDATE = """
import sys, threading
from pathlib import Path
from kvd.kube import client, leader

kubeconfig, namespace, name, identity = sys.argv[1:]
leader.LeaderElector(
    client.connect(Path(kubeconfig)), namespace=namespace, name=name, identity=identity,
    on_started=lambda: None, on_stopped=lambda: None,
    lease_seconds=3, renew_seconds=2, retry_seconds=0.5,
).start()
threading.Event().wait()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("leader") / "api")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> structlog.testing.LogCapture:
    capture = structlog.testing.LogCapture()
    monkeypatch.setattr(leader, "log", structlog.wrap_logger(None, processors=[capture]))
    return capture


class Candidate:
    def __init__(self, api: k8s.ApiClient, identity: str, **kwargs: Any) -> None:
        self.identity = identity
        self.started_at: list[float] = []  # time.monotonic() of each on_started
        self.stopped_at: list[float] = []
        self.elector = leader.LeaderElector(
            api,
            identity=identity,
            on_started=lambda: self.started_at.append(time.monotonic()),
            on_stopped=lambda: self.stopped_at.append(time.monotonic()),
            renew_seconds=RENEW,
            retry_seconds=RETRY,
            **kwargs,
        )
        self.elector.start()

    @property
    def started(self) -> int:
        return len(self.started_at)

    @property
    def stopped(self) -> int:
        return len(self.stopped_at)


class Candidates:
    """Starts candidates for this test's Lease (named after the test), and stops them after it."""

    def __init__(self, server: Server, lease_name: str) -> None:
        self.server = server
        self.lease_name = lease_name
        self.made: list[Candidate] = []

    def __call__(
        self, identity: str, *, namespace: str = "default", api: Any = None, lease: float = LEASE
    ) -> Candidate:
        api = api or client.connect(self.server.kubeconfig)
        c = Candidate(api, identity, namespace=namespace, name=self.lease_name, lease_seconds=lease)
        self.made.append(c)
        return c

    def spec(self, namespace: str = "default") -> dict[str, Any]:
        path = f"{LEASES.format(namespace)}/{self.lease_name}"
        spec: dict[str, Any] = client.Raw(client.connect(self.server.kubeconfig)).get(path)["spec"]
        return spec


@pytest.fixture
def candidates(server: Server, request: pytest.FixtureRequest) -> Iterator[Candidates]:
    made = Candidates(server, re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-"))
    yield made
    for c in made.made:
        c.elector.stop()


class Proxy:
    """A TCP proxy to the API server that can fail as servers and networks do: refuse
    connections (`close`), or swallow everything (`freeze`: connections stay open, nothing comes
    back)."""

    def __init__(self, server: Server, kubeconfig: Path) -> None:
        self.target = server.url.removeprefix("https://").rstrip("/").rsplit(":", 1)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.frozen = threading.Event()
        self.sockets: list[socket.socket] = [self.listener]
        config = yaml.safe_load(server.kubeconfig.read_text())
        port = self.listener.getsockname()[1]
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
        kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig = kubeconfig
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(conn)
            if self.frozen.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            self.sockets.append(upstream)
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if self.frozen.is_set():
                    continue
                dst.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        """Close every connection and refuse new ones."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        for s in self.sockets:
            s.close()


@pytest.fixture
def proxy(server: Server, tmp_path: Path) -> Iterator[Proxy]:
    p = Proxy(server, tmp_path / "kubeconfig")
    yield p
    p.close()


def test_a_candidate_leads_and_the_lease_names_it(server: Server, candidates: Candidates) -> None:
    """Also: upstream's LeaseLock would talk through the default ApiClient, which points nowhere
    here, and would reject the sub-second retry period and crash on the float lease duration."""
    a = candidates("a")
    assert a.elector.wait_leading(20), "the only candidate never led"
    assert a.elector.is_leader
    wait_for("on_started", lambda: a.started == 1)
    out = server.kubectl("get", "lease", "-n", "default", candidates.lease_name, "-o", "yaml")
    spec = yaml.safe_load(out.stdout)["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 3  # an integer, as the Lease field is
    assert MICRO_TIME.match(spec["acquireTime"]) and MICRO_TIME.match(spec["renewTime"]), spec
    wait_for("the leader to renew", lambda: candidates.spec()["renewTime"] != spec["renewTime"])
    renewed = candidates.spec()
    assert renewed["acquireTime"] == spec["acquireTime"] and renewed["holderIdentity"] == "a"
    assert a.started == 1 and a.stopped == 0


def test_of_two_candidates_one_leads_until_it_stops(server: Server, candidates: Candidates) -> None:
    pair = [candidates("a"), candidates("b")]
    wait_for("a leader", lambda: any(c.elector.is_leader for c in pair))
    first, second = pair if pair[0].elector.is_leader else pair[::-1]
    holds_for(
        "the first leader leads alone",
        lambda: first.elector.is_leader and not second.elector.is_leader,
        2 * LEASE,  # a follower that ignored a renewing leader would take over after one LEASE
    )
    assert candidates.spec()["holderIdentity"] == first.identity
    assert second.started == 0

    first.elector.stop()  # stops renewing, as if hung; the Lease is not released
    wait_for("on_stopped of the stopped leader", lambda: first.stopped == 1)
    assert not first.elector.is_leader
    wait_for("the other candidate to take over", lambda: second.started == 1, timeout=LEASE + 20)
    assert second.elector.is_leader and candidates.spec()["holderIdentity"] == second.identity
    assert (first.started, first.stopped, second.started, second.stopped) == (1, 1, 1, 0)


def test_a_released_lease_is_taken_over_at_once(server: Server, candidates: Candidates) -> None:
    """client-go's ReleaseOnCancel: the leader that stops on purpose leaves the Lease with no
    holder, so the standby leads at its next attempt, not after the (here very long) lease."""
    long_lease = 300.0
    first = candidates("first", lease=long_lease)
    assert first.elector.wait_leading(20)
    second = candidates("second", lease=long_lease)
    holds_for("the standby waits while the Lease is held", lambda: second.started == 0, 2 * RETRY)
    assert first.elector.release()
    released = candidates.spec()
    assert released.get("holderIdentity") is None and released["leaseDurationSeconds"] == 1
    wait_for("the standby to lead", lambda: second.started == 1, timeout=30)  # << long_lease
    assert candidates.spec()["holderIdentity"] == "second"
    assert not first.elector.release()  # no longer the holder: nothing to give up


def test_the_survivor_takes_over_from_a_killed_leader(
    server: Server, candidates: Candidates
) -> None:
    name = candidates.lease_name
    doomed = subprocess.Popen(
        [sys.executable, "-c", CANDIDATE, str(server.kubeconfig), "default", name, "doomed"]
    )
    try:

        def doomed_holds() -> bool:
            try:
                return candidates.spec()["holderIdentity"] == "doomed"
            except client.ApiError as exc:
                assert exc.not_found
                return False

        wait_for("the candidate in a subprocess to lead", doomed_holds, timeout=30)
        survivor = candidates("survivor")
        holds_for(
            "the survivor does not lead while the lease is held",
            lambda: not survivor.elector.is_leader,
            LEASE,  # the lease's own duration: a candidate ignoring it would have taken it
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        killed = time.monotonic()
        assert survivor.elector.wait_leading(LEASE + 20), "the survivor never took over"
        # It waited for the lease to expire (LEASE after it last saw a renewal), not less.
        assert time.monotonic() - killed > LEASE - 2 * RETRY
        assert candidates.spec()["holderIdentity"] == "survivor"
    finally:
        doomed.kill()
        doomed.wait()


def test_a_leader_whose_lease_is_taken_stops_for_good(
    server: Server, candidates: Candidates
) -> None:
    a = candidates("a")
    assert a.elector.wait_leading(20)
    raw = client.Raw(client.connect(server.kubeconfig))
    path = f"{LEASES.format('default')}/{candidates.lease_name}"
    while True:  # the leader renews concurrently: retry on conflict
        lease = raw.get(path)
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(holderIdentity="usurper", acquireTime=now, renewTime=now)
        try:
            raw.update(path, lease)
            break
        except client.ApiError as exc:
            assert exc.conflict, exc

    wait_for("on_stopped after the lease was taken", lambda: a.stopped == 1, timeout=RENEW + 20)
    assert not a.elector.is_leader
    # The usurper never renews, yet the old leader does not campaign again.
    holds_for(
        "the usurper keeps the lease and the stopped leader does not lead",
        lambda: raw.get(path)["spec"]["holderIdentity"] == "usurper" and not a.elector.is_leader,
        LEASE + 2,  # past the lease's expiry, when a campaigning candidate would take it
    )
    assert (a.started, a.stopped) == (1, 1)


def test_a_missing_namespace_is_retried_until_created(
    server: Server,
    candidates: Candidates,
    captured: structlog.testing.LogCapture,
) -> None:
    namespace = "kvd-leader-later"

    def refused() -> float:
        """Lease creations the server has refused with 404 (only a missing namespace does)."""
        samples = metrics.parse(server.kubectl("get", "--raw", "/metrics").stdout)
        key = (("code", "404"), ("group", "coordination.k8s.io"), ("resource", "leases"))
        return sum(
            v
            for (name, labels), v in samples.items()
            if name == "apiserver_request_total"
            and set(key) <= set(labels)
            and dict(labels)["verb"] == "create"
        )

    before = refused()
    a = candidates("a", namespace=namespace)

    def warnings() -> list[dict[str, Any]]:
        return [e for e in captured.entries if e["event"] == "lease_namespace_missing"]

    wait_for("a warning about the missing namespace", warnings)
    # it goes on trying (the server refuses each attempt): still one warning, no crash
    wait_for("four refused attempts", lambda: refused() - before >= 4, interval=RETRY / 2)
    assert len(warnings()) == 1
    assert not a.elector.is_leader
    client.Raw(client.connect(server.kubeconfig)).create(
        "/api/v1/namespaces", {"metadata": {"name": namespace}}
    )
    assert a.elector.wait_leading(20), "never led after the namespace was created"
    assert candidates.spec(namespace)["holderIdentity"] == "a"
    assert len(warnings()) == 1


def test_a_leader_cut_off_from_the_server_stops(
    candidates: Candidates, proxy: Proxy, captured: structlog.testing.LogCapture
) -> None:
    """Upstream lets the connection error escape the renew loop: the thread dies, on_stopped is
    never called, and the process would go on acting as the leader."""
    a = candidates("a", api=client.connect(proxy.kubeconfig))
    assert a.elector.wait_leading(20)
    proxy.close()
    wait_for("on_stopped after renewals failed", lambda: a.stopped == 1, timeout=RENEW + 20)
    assert not a.elector.is_leader
    assert [e["event"] for e in captured.entries if e["log_level"] == "warning"] == [
        "lease_unreachable",
        "leader_lost",
    ]


def test_a_leader_whose_server_stops_answering_steps_down_before_the_takeover(
    candidates: Candidates, proxy: Proxy, captured: structlog.testing.LogCapture
) -> None:
    """Upstream's lock requests carry no timeout, so the election thread would wait for good;
    and it checks the renew deadline only between attempts, so with timeouts but client-go's
    ten retries per request the leader would go on leading after another took the lease."""
    configuration = k8s.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(proxy.kubeconfig), client_configuration=configuration
    )
    configuration.retries = 10
    a = candidates("a", api=k8s.ApiClient(configuration), lease=4)
    assert a.elector.wait_leading(20)
    b = candidates("b", lease=4)
    holds_for("b does not lead while a renews", lambda: not b.elector.is_leader, 1)
    proxy.freeze()
    wait_for("b to take over", lambda: b.started == 1, timeout=4 + 20)
    assert a.stopped == 1 and not a.elector.is_leader, "a still leads: two leaders at once"
    assert a.stopped_at[0] < b.started_at[0], "two leaders at once"
    wait_for(
        "the unanswered request to time out",
        lambda: any(e["event"] == "lease_unreachable" for e in captured.entries),
    )


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [
        pytest.param(3.0, 3.0, 0.5, id="lease-not-longer-than-renew"),
        pytest.param(3.0, 2.0, 2.0, id="renew-not-longer-than-jittered-retry"),
        pytest.param(3.0, 2.0, 0.0, id="retry-not-positive"),
    ],
)
def test_inconsistent_periods_are_rejected(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="must"):
        leader.LeaderElector(
            k8s.ApiClient(),
            namespace="default",
            name="x",
            identity="a",
            on_started=lambda: None,
            on_stopped=lambda: None,
            lease_seconds=lease,
            renew_seconds=renew,
            retry_seconds=retry,
        )
