"""`kvd local up`'s registration of the controller's subresources.kubevirt.io API
(`cluster.register_api`), against a real API server and a toy backend serving with the
certificate `up` gives the controller (the local CA, valid for `kvd-api.kvd.svc`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvd import address_file
from kvd.local import cluster
from kvd.local.apiserver import tls
from tests.local.apiserver.aggregation.backend import Backend
from tests.local.apiserver.conftest import Server, start_server

pytestmark = pytest.mark.integration  # a kvd local apiserver process


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Backend]]:
    server = start_server(tmp_path / "data")
    backend = None
    try:
        server.kubectl("create", "namespace", cluster.KVD_NAMESPACE)
        out = server.kubectl(
            "get", "cm", "-n", "kube-system", "extension-apiserver-authentication", "-o", "json"
        ).stdout
        data = json.loads(out)["data"]
        cert, key = tls.Certificates(server.data_dir).issue(
            "controller", [cluster.LOOPBACK, cluster.API_SERVICE_HOST]
        )
        backend = Backend(
            cert,
            key,
            data["requestheader-client-ca-file"].encode(),
            json.loads(data["requestheader-allowed-names"]),
        )
        backend.start()
        yield server, backend
    finally:
        if backend is not None:
            backend.stop()
        server.stop()


def test_the_controllers_api_is_registered_and_available(served: tuple[Server, Backend]) -> None:
    server, backend = served
    listening = address_file.Listening(
        os.getpid(), {"subresources": f"{cluster.LOOPBACK}:{backend.port}"}
    )
    said = cluster.register_api(server.data_dir, listening)
    assert said.startswith("v1.subresources.kubevirt.io Available"), said
    table = server.kubectl("get", "apiservice", "v1.subresources.kubevirt.io").stdout
    assert "kvd/kvd-api" in table and "True" in table, table
    got = server.kubectl(
        "get", "--raw", "/apis/subresources.kubevirt.io/v1/namespaces/kvd/virtualmachines/a/x"
    ).stdout
    assert json.loads(got)["user"] == "kvd-admin"

    # a restarted controller listens elsewhere: registering again moves the endpoint
    backend.stop()
    backend.start()
    moved = address_file.Listening(os.getpid(), {"subresources": f"127.0.0.1:{backend.port}"})
    assert "Available" in cluster.register_api(server.data_dir, moved)
    got = server.kubectl("get", "--raw", "/apis/subresources.kubevirt.io/v1/x").stdout
    assert json.loads(got)["path"] == "/apis/subresources.kubevirt.io/v1/x"


def test_a_controller_without_the_api_is_not_registered(served: tuple[Server, Backend]) -> None:
    server, _ = served
    said = cluster.register_api(server.data_dir, address_file.Listening(os.getpid(), {}))
    assert said.startswith("not registered"), said
    absent = server.kubectl("get", "apiservice", "v1.subresources.kubevirt.io", check=False)
    assert absent.returncode != 0 and "NotFound" in absent.stderr
