"""The local node as users meet it: pods created through the API server of a cluster brought up
by `kvd local up`, run as processes in their own namespaces, seen through kubectl."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kvd import priority
from kvd.local.node import scheduler
from tests.local.node.conftest import Cluster, kill
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # starts a local cluster (kvd local up)

Json = dict[str, Any]


def shell_pod(name: str, script: str, **spec: Any) -> Json:
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def state_of(pod: Json, container: str = "main") -> Json:
    for s in pod.get("status", {}).get("containerStatuses") or []:
        if s["name"] == container:
            state: Json = s["state"]
            return state
    return {}


def condition(pod: Json, kind: str) -> Json:
    for c in pod.get("status", {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def test_node_registers_with_capacity_and_renews_its_lease(cluster: Cluster) -> None:
    node = cluster.raw.get(f"/api/v1/nodes/{cluster.node_name}")
    status = node["status"]
    assert int(status["capacity"]["cpu"]) >= 1
    assert status["allocatable"]["memory"].endswith("Ki")
    assert {a["type"] for a in status["addresses"]} >= {"InternalIP", "Hostname"}
    assert condition(node, "Ready")["status"] == "True"
    lease = cluster.raw.get(
        f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{cluster.node_name}"
    )
    assert lease["spec"]["holderIdentity"] == cluster.node_name
    out = cluster.kubectl("get", "nodes").stdout
    assert cluster.node_name in out and "Ready" in out


def test_shell_pod_runs_to_success_and_its_output_is_in_the_logs(cluster: Cluster) -> None:
    cluster.create_pod(
        shell_pod(
            "hello",
            'sleep 0.5; echo "hello from $POD_NAME in $POD_NS on $NODE at $POD_IP ($POD_UID)"',
            restartPolicy="Never",
            container={
                "env": [
                    {"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}}
                    for n, p in (
                        ("POD_NAME", "metadata.name"),
                        ("POD_NS", "metadata.namespace"),
                        ("POD_UID", "metadata.uid"),
                        ("NODE", "spec.nodeName"),
                        ("POD_IP", "status.podIP"),
                    )
                ]
            },
        )
    )
    running = cluster.wait_phase("hello", "Running")
    assert "running" in state_of(running)
    assert running["spec"]["nodeName"] == cluster.node_name
    assert condition(running, "PodScheduled")["status"] == "True"
    done = cluster.wait_phase("hello", "Succeeded")
    terminated = state_of(done)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    pod_ip = done["status"]["podIP"]
    assert done["status"]["podIPs"] == [{"ip": pod_ip}]
    logs = cluster.kubectl("logs", "hello").stdout
    expected = (
        f"hello from hello in default on {cluster.node_name} at {pod_ip} "
        f"({done['metadata']['uid']})"
    )
    assert logs.strip() == expected
    assert "Completed" in cluster.kubectl("get", "pod", "hello").stdout


def test_the_node_is_raised_over_guests_and_its_containers_are_not(cluster: Cluster) -> None:
    # kvd/priority.py: the node (root here) runs at the control path's nice; a container's
    # program gets the usual 0 back, or every pod would inherit the node's weight
    node = cluster.components()["node"]
    assert os.getpriority(os.PRIO_PROCESS, node) == priority.CONTROL_NICE
    cluster.create_pod(shell_pod("niceness", "nice; exec sleep 60", restartPolicy="Never"))
    cluster.wait_phase("niceness", "Running")
    wait_for("the container's nice in its log", lambda: cluster.kubectl("logs", "niceness").stdout)
    assert cluster.kubectl("logs", "niceness").stdout.strip() == "0"
    assert cluster.kubectl("exec", "niceness", "--", "nice").stdout.strip() == "0"
    cluster.kubectl("delete", "pod", "niceness", "--grace-period=0")


def test_failing_command_ends_failed_with_its_exit_code(cluster: Cluster) -> None:
    cluster.create_pod(shell_pod("fails", "echo about to fail >&2; exit 3", restartPolicy="Never"))
    pod = cluster.wait_phase("fails", "Failed")
    terminated = state_of(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert cluster.kubectl("logs", "fails").stdout.strip() == "about to fail"
    assert condition(pod, "Ready")["reason"] == "PodCompleted"


def test_deleted_pod_sees_sigterm_and_is_gone_within_its_grace_period(
    cluster: Cluster, tmp_path: Path
) -> None:
    tmp_path.chmod(0o777)
    cluster.create_pod(
        shell_pod(
            "graceful",
            "trap 'echo TERM > /out/signal; exit 0' TERM; while :; do sleep 0.1; done",
            terminationGracePeriodSeconds=30,
            container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]},
            volumes=[{"name": "out", "hostPath": {"path": str(tmp_path)}}],
        )
    )
    pod = cluster.wait_phase("graceful", "Running")
    began = time.monotonic()
    cluster.kubectl("delete", "pod", "graceful", "--wait=true", timeout=40)
    cluster.wait_gone("graceful", timeout=30)
    assert time.monotonic() - began < 30, "not gone within the 30 s grace period"
    assert (tmp_path / "signal").read_text() == "TERM\n"
    assert not _netns_exists(cluster.netns(pod))


def test_pod_ignoring_sigterm_is_killed_when_its_grace_period_ends(cluster: Cluster) -> None:
    cluster.create_pod(
        shell_pod(
            "stubborn",
            "trap '' TERM; echo started; while :; do sleep 0.1; done",
            terminationGracePeriodSeconds=1,
        )
    )
    pod = cluster.wait_pod("stubborn", lambda p: "started" in _logs(cluster, "stubborn"))
    cluster.kubectl("delete", "pod", "stubborn", "--wait=false")
    cluster.wait_gone("stubborn", timeout=30)
    assert not _netns_exists(cluster.netns(pod))


def test_exec_runs_in_the_pods_namespaces_and_returns_the_exit_code(cluster: Cluster) -> None:
    cluster.create_pod(shell_pod("exec-target", "echo hi > /tmp/mine; sleep 1000"))
    pod = cluster.wait_pod("exec-target", _ready, what="ready")
    pod_ip = pod["status"]["podIP"]
    addr = cluster.kubectl("exec", "exec-target", "-c", "main", "--", "ip", "-o", "addr").stdout
    assert f"inet {pod_ip}/" in addr
    assert "eth0" in addr
    # its mount namespace: the container's private /tmp, not the host's
    assert cluster.kubectl("exec", "exec-target", "--", "cat", "/tmp/mine").stdout == "hi\n"
    assert not Path("/tmp/mine").exists()
    failed = cluster.kubectl("exec", "exec-target", "--", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    # stdin travels too (kubectl exec -i)
    echoed = cluster.kubectl("exec", "-i", "exec-target", "--", "cat", stdin="through stdin\n")
    assert echoed.stdout == "through stdin\n"


def test_two_pods_get_distinct_ips_reach_each_other_and_the_host_reaches_both(
    cluster: Cluster,
) -> None:
    for name in ("net-a", "net-b"):
        cluster.create_pod(shell_pod(name, "sleep 1000"))
    a = cluster.wait_pod("net-a", _ready, what="ready")
    b = cluster.wait_pod("net-b", _ready, what="ready")
    ip_a, ip_b = a["status"]["podIP"], b["status"]["podIP"]
    assert ip_a != ip_b
    for source, target in (("net-a", ip_b), ("net-b", ip_a)):
        cluster.kubectl("exec", source, "--", "busybox", "ping", "-c", "1", "-W", "5", target)
    for target in (ip_a, ip_b):
        subprocess.run(["busybox", "ping", "-c", "1", "-W", "5", target], check=True)


def test_volumes_appear_at_their_paths_and_libvirt_dirs_are_private(
    cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "from-host").write_text("host file\n")
    tmp_path.chmod(0o777)
    for name in ("vol-a", "vol-b"):
        cluster.create_pod(
            shell_pod(
                name,
                f"echo {name} > /var/run/libvirt/{name}; echo {name} > /scratch/{name}; sleep 1000",
                container={
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/scratch"},
                        {"name": "host", "mountPath": "/host", "readOnly": True},
                    ]
                },
                volumes=[
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": str(tmp_path), "type": "Directory"}},
                ],
            )
        )
    for name, other in (("vol-a", "vol-b"), ("vol-b", "vol-a")):
        cluster.wait_pod(name, _ready, what="ready")
        listing = cluster.kubectl(
            "exec", name, "--", "sh", "-c", "sleep 0.2; ls /var/run/libvirt /scratch"
        ).stdout.split()
        assert name in listing and other not in listing
        assert cluster.kubectl("exec", name, "--", "cat", "/host/from-host").stdout == "host file\n"
        refused = cluster.kubectl("exec", name, "--", "touch", "/host/x", check=False)
        assert refused.returncode != 0  # mounted read-only
    assert not Path("/var/run/libvirt/vol-a").exists()


def test_init_containers_run_in_order_before_the_main_container(cluster: Cluster) -> None:
    pod = shell_pod(
        "inits", "cat /work/log", restartPolicy="Never",
        container={"volumeMounts": [{"name": "work", "mountPath": "/work"}]},
        volumes=[{"name": "work", "emptyDir": {}}],
    )  # fmt: skip
    pod["spec"]["initContainers"] = [
        {
            "name": f"init-{i}",
            "image": "busybox",
            "command": ["sh", "-c", f"echo init-{i} >> /work/log"],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        }
        for i in (1, 2)
    ]
    cluster.create_pod(pod)
    done = cluster.wait_phase("inits", "Succeeded")
    assert cluster.kubectl("logs", "inits").stdout == "init-1\ninit-2\n"
    assert condition(done, "Initialized")["status"] == "True"
    inits = done["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["exitCode"] for s in inits] == [0, 0]


def test_failed_container_restarts_and_previous_logs_show_the_last_attempt(
    cluster: Cluster,
) -> None:
    cluster.create_pod(
        shell_pod(
            "retries",
            "echo attempt; if [ -e /data/once ]; then sleep 1000; fi; touch /data/once; exit 1",
            restartPolicy="OnFailure",
            container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            volumes=[{"name": "data", "emptyDir": {}}],
        )
    )
    pod = cluster.wait_pod(
        "retries",
        lambda p: _ready(p) and p["status"]["containerStatuses"][0]["restartCount"] == 1,
        what="restarted once and running",
    )
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 1
    assert cluster.kubectl("logs", "retries", "--previous").stdout == "attempt\n"
    assert cluster.kubectl("logs", "retries", "--tail", "1").stdout == "attempt\n"


def test_memory_limit_is_enforced(cluster: Cluster) -> None:
    cluster.create_pod(
        shell_pod(
            "hungry",
            "tail /dev/zero",
            restartPolicy="Never",
            container={"resources": {"limits": {"memory": "32Mi"}}},
        )
    )
    pod = cluster.wait_phase("hungry", "Failed")
    terminated = state_of(pod)["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


def test_readiness_probe_gates_ready(cluster: Cluster) -> None:
    # the probe leaves a line in /tmp/probes each time it runs, so the test sees it has failed
    probe = ["sh", "-c", "echo probed >> /tmp/probes; cat /tmp/ready"]
    cluster.create_pod(
        shell_pod(
            "probed",
            "sleep 1000",
            container={"readinessProbe": {"exec": {"command": probe}, "periodSeconds": 1}},
        )
    )
    pod = cluster.wait_pod("probed", lambda p: "running" in state_of(p), what="running")

    def probes() -> int:
        done = cluster.kubectl("exec", "probed", "--", "cat", "/tmp/probes", check=False)
        return done.stdout.count("probed")

    wait_for("the readiness probe to have failed twice", lambda: probes() >= 2, interval=0.2)
    pod = cluster.pod("probed") or {}
    assert condition(pod, "Ready")["status"] == "False"
    assert condition(pod, "ContainersReady")["reason"] == "ContainersNotReady"
    cluster.kubectl("exec", "probed", "--", "touch", "/tmp/ready")
    pod = cluster.wait_pod("probed", lambda p: condition(p, "Ready")["status"] == "True")
    assert "1/1" in cluster.kubectl("get", "pod", "probed").stdout


def test_tcp_and_http_readiness_probes_reach_the_pod(cluster: Cluster) -> None:
    serve = "sleep 1; mkdir -p /tmp/www && echo ok > /tmp/www/index.html; "
    cluster.create_pod(
        {
            "metadata": {"name": "served"},
            "spec": {
                "containers": [
                    {
                        "name": name,
                        "image": "busybox",
                        "command": [
                            "sh",
                            "-c",
                            f"{serve} exec busybox httpd -f -p {port} -h /tmp/www",
                        ],
                        "ports": [{"name": "web", "containerPort": port}],
                        "readinessProbe": {**probe, "periodSeconds": 1},
                    }
                    for name, port, probe in (
                        ("tcp", 8080, {"tcpSocket": {"port": 8080}}),
                        ("http", 8081, {"httpGet": {"port": "web", "path": "/index.html"}}),
                    )
                ]
            },
        }
    )
    pod = cluster.wait_pod("served", _ready, what="ready")
    assert all(s["ready"] for s in pod["status"]["containerStatuses"])


def test_unmet_node_selector_is_unschedulable_until_the_node_matches(cluster: Cluster) -> None:
    cluster.create_pod(shell_pod("picky", "sleep 1000", nodeSelector={"kvd.test/zone": "a"}))
    pod = cluster.wait_pod(
        "picky", lambda p: condition(p, "PodScheduled").get("reason") == "Unschedulable"
    )
    assert pod["status"]["phase"] == "Pending"
    assert condition(pod, "PodScheduled")["message"] == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    )
    assert "nodeName" not in pod["spec"]
    cluster.kubectl("label", "node", cluster.node_name, "kvd.test/zone=a")
    try:
        cluster.wait_phase("picky", "Running")
    finally:
        cluster.kubectl("label", "node", cluster.node_name, "kvd.test/zone-")


def test_pod_short_of_cpu_is_unschedulable_until_a_pod_ends(cluster: Cluster) -> None:
    """kube-scheduler's queue: an unschedulable pod is tried again when room frees."""
    node = cluster.raw.get(f"/api/v1/nodes/{cluster.node_name}")
    bound = cluster.raw.get(
        "/api/v1/pods", {"fieldSelector": f"spec.nodeName={cluster.node_name}"}
    )["items"]
    used = sum(
        scheduler.requests(p).cpu_millis
        for p in bound
        if p["status"].get("phase") not in scheduler.TERMINAL_PHASES
    )
    free = scheduler.allocatable(node).cpu_millis - used
    half = {"resources": {"requests": {"cpu": f"{free // 2 + 1}m"}}}
    cluster.create_pod(shell_pod("first-half", "sleep 1000", container=half))
    cluster.wait_phase("first-half", "Running")
    cluster.create_pod(shell_pod("second-half", "sleep 1000", container=dict(half)))
    pod = cluster.wait_pod(
        "second-half", lambda p: condition(p, "PodScheduled").get("reason") == "Unschedulable"
    )
    assert condition(pod, "PodScheduled")["message"] == (
        "0/1 nodes are available: 1 Insufficient cpu."
    )
    cluster.kubectl("delete", "pod", "first-half", "--grace-period=0", "--wait=false")
    try:
        running = cluster.wait_phase("second-half", "Running")
        assert condition(running, "PodScheduled")["status"] == "True"
    finally:
        cluster.kubectl("delete", "pod", "second-half", "--grace-period=0", "--wait=false")


def test_unknown_image_reports_err_image_pull_with_how_to_import(cluster: Cluster) -> None:
    cluster.create_pod(
        {
            "metadata": {"name": "no-image"},
            "spec": {"containers": [{"name": "main", "image": "example.org/missing:1.0"}]},
        }
    )
    pod = cluster.wait_pod("no-image", lambda p: "waiting" in state_of(p))
    waiting = state_of(pod)["waiting"]
    assert waiting["reason"] == "ErrImagePull"
    assert '"example.org/missing:1.0"' in waiting["message"]
    assert "kvd image import example.org/missing:1.0" in waiting["message"]
    assert pod["status"]["phase"] == "Pending"
    cluster.kubectl("delete", "pod", "no-image", timeout=30)


def test_killed_node_restarts_adopts_running_pods_and_cleans_up_deleted_ones(
    cluster: Cluster, tmp_path: Path
) -> None:
    tmp_path.chmod(0o777)
    host = {"volumes": [{"name": "out", "hostPath": {"path": str(tmp_path)}}]}
    mount = {"volumeMounts": [{"name": "out", "mountPath": "/out"}]}
    for name in ("keeps", "deleted", "vanishes"):
        cluster.create_pod(
            shell_pod(
                name,
                f"echo $$$$ >> /out/{name}; exec sleep 1000",  # $$ escapes $ in k8s
                restartPolicy="Never",
                container=mount,
                **host,
            )
        )
    pods = {n: cluster.wait_pod(n, _ready, what="ready") for n in ("keeps", "deleted", "vanishes")}
    # Ready is the container started, not its first line run: wait for each pid written
    wait_for(
        "each pod's pid",
        lambda: all((tmp_path / n).read_text().strip() for n in pods),
        ignoring=(FileNotFoundError,),
    )
    pids = {n: int((tmp_path / n).read_text()) for n in pods}

    kill(cluster.components()["node"])
    cluster.kubectl("delete", "pod", "deleted", "--wait=false")
    # its container and the shim that would have recorded its exit die while nobody watches
    shim = int(Path(f"/proc/{pids['vanishes']}/stat").read_text().rsplit(")", 1)[1].split()[1])
    kill(shim)
    kill(pids["vanishes"])
    restarted = cluster.up()  # brings back what is not running: the node
    assert "apiserver  running" in restarted.stdout
    cluster.wait_gone("deleted", timeout=30)
    assert not Path(f"/proc/{pids['deleted']}").exists()
    assert not _netns_exists(cluster.netns(pods["deleted"]))
    vanished = cluster.wait_phase("vanishes", "Failed", timeout=30)
    assert state_of(vanished)["terminated"]["reason"] == "ContainerStatusUnknown"
    kept = cluster.pod("keeps") or {}
    assert kept["status"]["phase"] == "Running"
    assert kept["status"]["containerStatuses"][0]["restartCount"] == 0
    assert Path(f"/proc/{pids['keeps']}").exists()  # the same process, adopted
    assert (tmp_path / "keeps").read_text() == f"{pids['keeps']}\n"  # never launched twice
    cluster.kubectl("delete", "pod", "keeps", timeout=30)
    assert not Path(f"/proc/{pids['keeps']}").exists()


def _ready(pod: Json) -> bool:
    return condition(pod, "Ready").get("status") == "True"


def _logs(cluster: Cluster, name: str) -> str:
    return cluster.kubectl("logs", name, check=False).stdout


def _netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def test_security_context_runs_as_its_user_on_a_read_only_root(cluster: Cluster) -> None:
    cluster.create_pod(
        shell_pod(
            "as-user",
            "id -u; id -g; touch /here 2>&1; true",
            restartPolicy="Never",
            securityContext={"runAsNonRoot": True, "runAsUser": 1001, "runAsGroup": 1002},
            container={
                "securityContext": {"readOnlyRootFilesystem": True},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            },
            volumes=[{"name": "tmp", "emptyDir": {}}],
        )
    )
    cluster.wait_phase("as-user", "Succeeded")
    out = cluster.kubectl("logs", "as-user").stdout.splitlines()
    assert out[:2] == ["1001", "1002"], out
    assert "Read-only file system" in out[2], out
    cluster.kubectl("delete", "pod", "as-user", timeout=30)


def test_run_as_non_root_with_uid_0_fails_the_container_with_the_kubelets_message(
    cluster: Cluster,
) -> None:
    cluster.create_pod(
        shell_pod(
            "rooted", "true", container={"securityContext": {"runAsNonRoot": True, "runAsUser": 0}}
        )
    )
    pod = cluster.wait_pod("rooted", lambda p: "waiting" in state_of(p))
    waiting = state_of(pod)["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"].startswith("container's runAsUser breaks non-root policy"), waiting
    assert pod["status"]["phase"] == "Pending"
    cluster.kubectl("delete", "pod", "rooted", timeout=30)
