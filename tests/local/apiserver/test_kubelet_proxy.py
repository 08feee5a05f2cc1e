"""`kubectl logs`, `kubectl exec` and `pods/binding` through a real API server process.

The node API is served by the test itself on the API server's `--kubelet-socket`, over real
processes in real network and mount namespaces (tests/local/node/process_pods.py); the Pod
objects are created, bound and given a Running status through the API, as the node would.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from kvd.local.node import kubelet_api
from tests.local.apiserver.conftest import KUBECTL, Server, start_server
from tests.local.node.process_pods import ProcessPods, command_running, leftovers
from tests.support.console import Transcript, pty_output
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.integration,  # starts a kvd local apiserver and a node API with pod processes
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)"),
]

POD_IP = "10.244.9.7"


@dataclass
class Cluster:
    server: Server
    pods: ProcessPods
    core: client.CoreV1Api

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.server.kubeconfig),
            "HOME": str(self.server.data_dir),
        }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    pods = ProcessPods(tmp_path / "pods")
    socket = tmp_path / "node" / "kubelet.sock"
    server = start_server(tmp_path / "data", "--kubelet-socket", str(socket))
    try:
        with kubelet_api.serve_in_thread(socket, pods):
            yield Cluster(server, pods, client.CoreV1Api(server.api()))
    finally:
        server.stop()
        pods.close()
        assert not leftovers(pods.prefix), "network namespaces left behind"


def make_pod(c: Cluster, name: str, containers: list[str], *, bind: bool = True) -> None:
    """The Pod object, bound to a node and Running, as the node would report it."""
    c.core.create_namespaced_pod(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [
                    {"name": n, "image": "busybox", "command": ["sleep", "600"]} for n in containers
                ]
            },
        },
    )
    if not bind:
        return
    bind_pod(c, name, "node-a")
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    c.core.patch_namespaced_pod_status(
        name,
        "default",
        {
            "status": {
                "phase": "Running",
                "podIP": POD_IP,
                "containerStatuses": [
                    {
                        "name": n,
                        "ready": True,
                        "restartCount": 0,
                        "image": "busybox",
                        "imageID": "",
                        "state": running,
                    }
                    for n in containers
                ],
            }
        },
    )


def bind_pod(c: Cluster, name: str, node: str) -> Any:
    body = client.V1Binding(
        metadata=client.V1ObjectMeta(name=name),
        target=client.V1ObjectReference(kind="Node", name=node),
    )
    # The answer is a Status (as from kube-apiserver), which this client cannot read as the
    # V1Binding it expects: take it raw.
    response = c.core.create_namespaced_pod_binding(name, "default", body, _preload_content=False)
    return response.status, json.loads(response.data)


# --- logs ---------------------------------------------------------------------------------------


def test_kubectl_logs(cluster: Cluster) -> None:
    c = cluster
    make_pod(c, "web", ["compute", "sidecar"])
    c.pods.add_pod("default", "web", address=f"{POD_IP}/24")
    c.pods.start("default", "web", "compute", "echo old-1; echo old-2").proc.wait(timeout=10)
    c.pods.start(
        "default", "web", "compute", "printf 'l1\\nl2\\nl3\\n'; exec sleep 600", ready="l3"
    )

    assert c.server.kubectl("logs", "web", "-c", "compute").stdout == "l1\nl2\nl3\n"
    assert c.server.kubectl("logs", "web", "-c", "compute", "--tail", "1").stdout == "l3\n"
    previous = c.server.kubectl("logs", "web", "-c", "compute", "--previous")
    assert previous.stdout == "old-1\nold-2\n"
    defaulted = c.server.kubectl("logs", "web")  # kubectl picks the first container itself
    assert defaulted.stdout == "l1\nl2\nl3\n"

    refused = c.server.kubectl("logs", "web", "-c", "compute", "--timestamps", check=False)
    assert refused.returncode == 1 and "timestamps is not supported" in refused.stderr
    waiting = c.server.kubectl("logs", "web", "-c", "sidecar", check=False)
    assert 'container "sidecar" in pod "web" is waiting to start' in waiting.stderr
    with pytest.raises(ApiException) as no_container:
        c.core.read_namespaced_pod_log("web", "default")
    assert no_container.value.status == 400
    assert json.loads(no_container.value.body)["message"] == (
        "a container name must be specified for pod web, choose one of: [compute sidecar]"
    )


def test_kubectl_logs_follow_ends_with_the_container(cluster: Cluster) -> None:
    c = cluster
    make_pod(c, "web", ["app"])
    pod = c.pods.add_pod("default", "web", address=f"{POD_IP}/24")
    script = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"
    c.pods.start("default", "web", "app", script, ready="first")
    follower = subprocess.Popen(
        [KUBECTL, "logs", "-f", "web"], stdout=subprocess.PIPE, text=True, env=c.env()
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first\n"
        (pod.workdir / "go").touch()
        assert follower.stdout.readline() == "second\n"
        assert follower.wait(timeout=20) == 0, "kubectl logs -f must end with the container"
    finally:
        follower.kill()
        follower.wait()


def test_logs_without_a_node(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")  # nothing serves DATA_DIR/node/kubelet.sock
    try:
        core = client.CoreV1Api(server.api())
        c = Cluster(server, ProcessPods(tmp_path), core)
        make_pod(c, "lonely", ["app"])
        done = server.kubectl("logs", "lonely", check=False)
        assert done.returncode == 1
        assert 'logs of pod "lonely" are not available: no node serves them' in done.stderr
        done = server.kubectl("exec", "lonely", "--", "true", check=False)
        assert 'no node serves pod "lonely"' in done.stderr
    finally:
        server.stop()


# --- exec ---------------------------------------------------------------------------------------


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    make_pod(cluster, "web", ["compute", "sidecar"])
    cluster.pods.add_pod("default", "web", address=f"{POD_IP}/24")
    script = (
        # a fresh /run, as a pod has: /run/libvirt need not exist on the host
        "mount -t tmpfs kvdtest /run && mkdir /run/libvirt && "
        f"echo private > /var/run/libvirt/{cluster.pods.prefix} && echo up && exec sleep 600"
    )
    cluster.pods.start("default", "web", "compute", script, ready="up")
    return cluster


def test_kubectl_exec(running: Cluster) -> None:
    kubectl = running.server.kubectl
    failed = kubectl("exec", "web", "-c", "compute", "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3, failed.stderr

    addresses = kubectl("exec", "web", "-c", "compute", "--", "ip", "-o", "addr").stdout
    assert f"{POD_IP}/24" in addresses

    private = f"/var/run/libvirt/{running.pods.prefix}"
    assert kubectl("exec", "web", "-c", "compute", "--", "cat", private).stdout == "private\n"

    piped = kubectl("exec", "-i", "web", "-c", "compute", "--", "cat", stdin="piped\nlines\n")
    assert piped.stdout == "piped\nlines\n"

    missing = kubectl("exec", "web", "-c", "compute", "--", "no-such-program", check=False)
    assert missing.returncode == 127
    assert "executable file not found in $PATH" in missing.stderr


def test_kubectl_exec_ends_the_command_when_kubectl_goes(running: Cluster) -> None:
    seconds = f"{800 + os.getpid() % 97}.{os.getpid()}"  # a unique command line to look for
    argv = [KUBECTL, "exec", "web", "-c", "compute", "--", "sh", "-c",
            f"echo started; exec sleep {seconds}"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=running.env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"
        # "started" comes from the shell just before it execs sleep: wait for the exec
        wait_for("the command to run", lambda: command_running("sleep", seconds), timeout=15)
    finally:
        proc.kill()
        proc.wait()
    wait_for(
        "the command to end with kubectl",
        lambda: not command_running("sleep", seconds),
        timeout=15,
    )


def test_kubectl_exec_refusals(running: Cluster) -> None:
    kubectl = running.server.kubectl
    wrong = kubectl("exec", "web", "-c", "nope", "--", "true", check=False)
    assert wrong.returncode == 1
    assert "container nope is not valid for pod web" in wrong.stderr
    not_running = kubectl("exec", "web", "-c", "sidecar", "--", "true", check=False)
    assert 'container "sidecar" in pod "web" is waiting to start' in not_running.stderr
    make_pod(running, "unbound", ["app"], bind=False)
    unbound = kubectl("exec", "unbound", "--", "true", check=False)
    assert "pod unbound does not have a host assigned" in unbound.stderr


def test_kubectl_exec_with_a_terminal(running: Cluster) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    argv = [KUBECTL, "exec", "-it", "web", "-c", "compute", "--", "sh", "-c",
            "tty; stty size; exit 6"]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=running.env(), start_new_session=True
    )
    os.close(slave)
    terminal = Transcript(pty_output(master), what="kubectl's terminal")
    try:
        terminal.wait_ended(30)  # kubectl exited and the pty is closed
        assert proc.wait(timeout=10) == 6, terminal.text
    finally:
        proc.kill()
        proc.wait()
        terminal.wait_ended()
        os.close(master)
    lines = terminal.text.replace("\r", "").splitlines()
    assert any(line.startswith("/dev/pts/") for line in lines), lines
    assert "33 111" in lines, "kubectl's terminal size reaches the command's pty"


def test_official_client_exec_over_v4(running: Cluster) -> None:
    """The `kubernetes` client's stream() speaks v4.channel.k8s.io over websocket-client."""
    session = stream(
        running.core.connect_get_namespaced_pod_exec,
        "web",
        "default",
        container="compute",
        command=["sh", "-c", "echo hi; exit 4"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    session.run_forever(timeout=20)
    assert session.read_stdout() == "hi\n"
    assert session.returncode == 4


def test_exec_is_websocket_only(running: Cluster) -> None:
    """kubectl falls back to SPDY when a WebSocket upgrade fails; the answer to that says why."""
    configuration = running.server.api().configuration
    http = urllib3.PoolManager(ca_certs=configuration.ssl_ca_cert)
    response = http.request(
        "POST",
        f"{running.server.url}/api/v1/namespaces/default/pods/web/exec"
        "?container=compute&command=true&stdout=true",
        headers={
            "Authorization": configuration.auth_settings()["BearerToken"]["value"],
            "Connection": "Upgrade",
            "Upgrade": "SPDY/3.1",
        },
    )
    status = json.loads(response.data)
    assert response.status == 400 and "not SPDY" in status["message"], status


# --- binding ------------------------------------------------------------------------------------


def test_binding(cluster: Cluster) -> None:
    c = cluster
    make_pod(c, "web", ["app"], bind=False)
    assert bind_pod(c, "web", "node-a") == (
        201,
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
    )
    pod = c.core.read_namespaced_pod("web", "default")
    assert pod.spec.node_name == "node-a"
    assert [(x.type, x.status) for x in pod.status.conditions] == [("PodScheduled", "True")]
    on_node = c.core.list_namespaced_pod("default", field_selector="spec.nodeName=node-a")
    assert [p.metadata.name for p in on_node.items] == ["web"]
    with pytest.raises(ApiException) as again:
        bind_pod(c, "web", "node-b")
    assert again.value.status == 409
    assert json.loads(again.value.body)["message"] == (
        'Operation cannot be fulfilled on pods/binding "web": '
        'pod web is already assigned to node "node-a"'
    )
    with pytest.raises(ApiException) as missing:
        bind_pod(c, "ghost", "node-a")
    assert missing.value.status == 404
    resources = json.loads(c.server.kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    verbs = {r["name"]: r["verbs"] for r in resources if r["name"].startswith("pods/")}
    assert verbs["pods/exec"] == ["create", "get"] and verbs["pods/binding"] == ["create"]
