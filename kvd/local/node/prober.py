"""Readiness probes: exec (inside the container's namespaces), tcpSocket and httpGet.

One prober thread walks the probes due now and runs them on a small pool, so a slow probe (up to
its `timeoutSeconds`) never delays the others or the node's own loop. Results follow the kubelet:
`initialDelaySeconds` before the first probe, every `periodSeconds`, ready after
`successThreshold` successes in a row, unready after `failureThreshold` failures. A change of
readiness calls `changed(uid)`, which only enqueues the pod.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kvd import logs

log = logs.get_logger(__name__)

Json = dict[str, Any]


@dataclass
class _Probe:
    uid: str
    container: str
    spec: Json
    pid: int
    ip: str
    ports: dict[str, int]
    due: float
    ready: bool = False
    successes: int = 0
    failures: int = 0
    running: bool = field(default=False)


class Prober:
    def __init__(self, changed: Callable[[str], None]) -> None:
        self._changed = changed
        self._lock = threading.Lock()
        self._probes: dict[tuple[str, str], _Probe] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="prober", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def watch(self, uid: str, container: Json, *, pid: int, ip: str) -> None:
        """Probe `container` (running as `pid`) from now on; a new pid restarts its probe."""
        spec = container.get("readinessProbe")
        key = (uid, container["name"])
        with self._lock:
            current = self._probes.get(key)
            if spec is None or (current is not None and current.pid == pid):
                return
            ports = {
                p["name"]: int(p["containerPort"])
                for p in container.get("ports") or []
                if p.get("name")
            }
            delay = float(spec.get("initialDelaySeconds") or 0)
            self._probes[key] = _Probe(
                uid, container["name"], spec, pid, ip, ports, time.monotonic() + delay
            )

    def forget(self, uid: str, container: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._probes if k[0] == uid and container in (None, k[1])]:
                del self._probes[key]

    def ready(self, uid: str, container: Json) -> bool:
        """Ready as far as probes go: true without a readiness probe."""
        if container.get("readinessProbe") is None:
            return True
        with self._lock:
            probe = self._probes.get((uid, container["name"]))
            return probe is not None and probe.ready

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            with self._lock:
                due = [p for p in self._probes.values() if p.due <= now and not p.running]
                for p in due:
                    p.running = True
            for p in due:
                self._pool.submit(self._run, p)

    def _run(self, probe: _Probe) -> None:
        spec = probe.spec
        try:
            ok = _check(spec, probe)
        except Exception as exc:  # a probe that cannot even run is a failed probe
            log.debug("probe_error", uid=probe.uid, container=probe.container, error=str(exc))
            ok = False
        changed = False
        with self._lock:
            probe.running = False
            probe.due = time.monotonic() + float(spec.get("periodSeconds") or 10)
            if ok:
                probe.successes, probe.failures = probe.successes + 1, 0
                if not probe.ready and probe.successes >= int(spec.get("successThreshold") or 1):
                    probe.ready = changed = True
            else:
                probe.successes, probe.failures = 0, probe.failures + 1
                if probe.ready and probe.failures >= int(spec.get("failureThreshold") or 3):
                    probe.ready, changed = False, True
        if changed:
            self._changed(probe.uid)


def _check(spec: Json, probe: _Probe) -> bool:
    timeout = float(spec.get("timeoutSeconds") or 1)
    if "exec" in spec:
        nsenter = shutil.which("nsenter") or "nsenter"
        argv = [nsenter, "-t", str(probe.pid), "--mount", "--net", "--", *spec["exec"]["command"]]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0
    if "tcpSocket" in spec:
        port = _port(spec["tcpSocket"]["port"], probe.ports)
        host = spec["tcpSocket"].get("host") or probe.ip
        with socket.create_connection((host, port), timeout=timeout):
            return True
    if "httpGet" in spec:
        get = spec["httpGet"]
        connection = http.client.HTTPConnection(
            get.get("host") or probe.ip, _port(get["port"], probe.ports), timeout=timeout
        )
        try:
            connection.request("GET", get.get("path") or "/")
            return 200 <= connection.getresponse().status < 400
        finally:
            connection.close()
    return False


def _port(port: int | str, named: dict[str, int]) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    return named[str(port)]
