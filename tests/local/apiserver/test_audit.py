"""The audit log of a real `kvd local apiserver --audit-log-path`, written by kubectl's requests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from kvd.local.apiserver import audit
from kvd.local.apiserver.server import USER
from tests.local.apiserver.conftest import KUBECTL, start_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_request_is_one_event_naming_who_did_what_to_which_object(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "audit.log"
    server = start_server(tmp_path / "data", "--audit-log-path", str(log))
    try:
        server.kubectl("create", "configmap", "c1", "-n", "default", "--from-literal=a=b")
        server.kubectl("delete", "configmap", "missing", "-n", "default", check=False)
        watch = subprocess.Popen(
            [KUBECTL, "--kubeconfig", str(server.kubeconfig), "get", "pods", "-A", "--watch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # the watch is in the log while it is still open
            started = wait_for(
                "the open watch's ResponseStarted event",
                lambda: [
                    e
                    for e in _events(log)
                    if e["verb"] == "watch" and e["stage"] == "ResponseStarted"
                ],
                timeout=30,
            )
        finally:
            watch.terminate()
            watch.wait()
    finally:
        server.stop()

    assert log.stat().st_mode & 0o777 == 0o600
    events = _events(log)
    assert all(e["apiVersion"] == "audit.k8s.io/v1" and e["level"] == "Metadata" for e in events)
    created = [e for e in events if e["verb"] == "create" and e["stage"] == "ResponseComplete"]
    assert [e["objectRef"] for e in created] == [
        {"resource": "configmaps", "apiGroup": "", "apiVersion": "v1", "namespace": "default"}
    ]
    assert created[0]["responseStatus"]["code"] == 201
    assert created[0]["user"]["username"] == "kvd-admin"
    assert "system:masters" in created[0]["user"]["groups"]
    deleted = [e for e in events if e["verb"] == "delete"]
    assert deleted[0]["objectRef"]["name"] == "missing"
    assert deleted[0]["responseStatus"]["code"] == 404
    assert started[0]["objectRef"]["resource"] == "pods"
    assert len({e["auditID"] for e in events if e["stage"] == "ResponseComplete"}) == len(
        [e for e in events if e["stage"] == "ResponseComplete"]
    )


def test_an_unauthenticated_request_is_logged_as_anonymous(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    server = start_server(tmp_path / "data", "--audit-log-path", str(log))
    try:
        server.kubectl("get", "pods", "--token", "wrong", check=False)
    finally:
        server.stop()
    refused = [e for e in _events(log) if e["responseStatus"]["code"] == 401]
    assert refused
    assert refused[0]["user"]["username"] == "system:anonymous"


def test_the_log_rotates_past_its_size_keeping_its_backups(tmp_path: Path) -> None:
    """In-process: the rotation is the file's business, not the HTTP server's."""
    path = tmp_path / "audit.log"
    log = audit.AuditLog(path, user=USER, max_bytes=2_000, max_backups=2)
    for n in range(40):
        request = make_mocked_request("GET", f"/api/v1/namespaces/default/configmaps/c{n}")
        log._write(request, "ResponseComplete", 200)
    log.close()
    names = [
        json.loads(line)["objectRef"]["name"]
        for p in (path.with_name("audit.log.2"), path.with_name("audit.log.1"), path)
        for line in p.read_text().splitlines()
    ]
    assert not path.with_name("audit.log.3").exists()
    assert names == [f"c{n}" for n in range(40 - len(names), 40)]  # the newest, in order
    assert all(p.stat().st_size < 2_600 for p in tmp_path.iterdir())
