"""A pod's own identity, end to end on a real local cluster: the ServiceAccount admission plugin
gives the pod kube's token volume, the node fills it (a TokenRequest bound to the pod, the cluster
CA, the namespace), and the container — host binaries: curl — calls the API server with that
token. Authentication must let it in (RBAC, not a 401, decides what it may do), as the account
it runs as.

The API server listens on the host's loopback, which a pod's network namespace does not share,
so the test relays one port on the bridge's gateway address (which pods reach) to it; curl still
verifies the server's certificate against the mounted `ca.crt`, for the name `localhost`."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from ipaddress import IPv4Network
from urllib.parse import urlparse

import pytest
import yaml

from tests.local.node.conftest import Cluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # starts a local cluster (kvd local up)

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@contextlib.contextmanager
def relay(listen: str, target: tuple[str, int]) -> Iterator[int]:
    """Forward TCP connections to `listen`:PORT on to `target`; yields PORT."""
    server = socket.create_server((listen, 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(target, timeout=10)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_pod_calls_the_api_server_with_its_mounted_token(cluster: Cluster) -> None:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    api = urlparse(config["clusters"][0]["cluster"]["server"])
    assert api.hostname == "127.0.0.1" and api.port is not None
    gateway = str(next(IPv4Network(cluster.cidr).hosts()))
    with relay(gateway, ("127.0.0.1", api.port)) as port:
        base = f"https://localhost:{api.port}"
        curl = (
            f"curl -sS --cacert {MOUNT}/ca.crt --connect-to localhost:{api.port}:{gateway}:{port} "
            f'-H "Authorization: Bearer $(cat {MOUNT}/token)"'
        )
        review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        script = "; ".join(
            [
                f"echo namespace=$(cat {MOUNT}/namespace)",
                f"echo mode=$(stat -L -c %a {MOUNT}/token)",
                f"echo pods=$({curl} -o /dev/null -w '%{{http_code}}' "
                f"{base}/api/v1/namespaces/default/pods)",
                f"echo review=$({curl} -X POST -H 'Content-Type: application/json' -d '{review}' "
                f"{base}/apis/authentication.k8s.io/v1/selfsubjectreviews)",
            ]
        )
        cluster.create_pod(
            {
                "metadata": {"name": "caller"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                    ],
                },
            }
        )
        pod = cluster.wait_phase("caller", "Succeeded", timeout=90)
    assert pod["spec"]["serviceAccountName"] == "default"
    lines = dict(
        line.split("=", 1)
        for line in cluster.kubectl("logs", "caller").stdout.splitlines()
        if "=" in line
    )
    assert (lines["namespace"], lines["mode"]) == ("default", "644")
    assert lines["pods"] == "403"  # authenticated; the default account may not list pods
    user = json.loads(lines["review"])["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["caller"]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
    assert user["extra"]["authentication.kubernetes.io/node-name"] == [cluster.node_name]


def test_a_pod_that_opts_out_gets_no_token(cluster: Cluster) -> None:
    script = f"test -e {MOUNT}/token && echo mounted || echo absent"
    cluster.create_pod(
        {
            "metadata": {"name": "no-token"},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [
                    {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                ],
            },
        }
    )
    cluster.wait_phase("no-token", "Succeeded", timeout=60)
    wait_for(
        "the pod's log",
        lambda: cluster.kubectl("logs", "no-token").stdout.strip() == "absent",
        timeout=10,
    )
