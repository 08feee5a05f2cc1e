"""A stand-in for a node's status writes, for tests of the workload controllers against a real
API server without a node: every pod of a namespace gets an IP, `Running` and `Ready=True`
(except those named in `unready`), written through `pods/status` as a kubelet writes them. The
tests that need pods really running use the local node (tests/local/node/test_workloads.py)."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client


class KubeletDouble:
    def __init__(self, api: client.ApiClient, namespace: str = "default") -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.unready: set[str] = set()
        self._ips: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> KubeletDouble:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(client.ApiException):
                for pod in self.core.list_namespaced_pod(self.namespace).items:
                    self._mark(pod)

    def _mark(self, pod: Any) -> None:
        name = pod.metadata.name
        ready = "False" if name in self.unready else "True"
        current = {c.type: c.status for c in (pod.status.conditions or [])}
        if pod.status.pod_ip and current.get("Ready") == ready:
            return
        ip = self._ips.setdefault(name, f"10.250.0.{len(self._ips) + 2}")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": now}],
            }
        }
        with contextlib.suppress(client.ApiException):
            self.core.patch_namespaced_pod_status(name, self.namespace, body)
