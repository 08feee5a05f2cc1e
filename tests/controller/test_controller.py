"""A real `kvd controller` process against a real `kvd local apiserver`, with no node: the test
plays the node's part where needed (binding the pod, writing its status), so each rule of the
controller is seen on its own, in a second or two, without booting a guest. The whole path with
a node, a handler and guests is in tests/e2e."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kvd.kube import client
from tests.controller.conftest import CONFIG, VMIS, Env, Json
from tests.local.apiserver.conftest import KVD
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # starts a kvd local apiserver and kvd controller processes


def test_pod_follows_the_live_config(env: Env) -> None:
    first = env.create_vmi("cfg-a")
    pod = env.the_pod(first)
    compute = pod["spec"]["containers"][0]
    assert "--allow-emulation" in compute["args"]
    assert compute["resources"]["requests"]["memory"] == "256Mi"  # 128Mi + 128Mi
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == str(env.launcher_dir)
    vmi = wait_for("Scheduling", lambda: _phase(env.vmi("cfg-a")) == "Scheduling")
    vmi = env.vmi("cfg-a")
    assert "kubevirt.io/foregroundDeleteVirtualMachine" in vmi["metadata"]["finalizers"]
    assert [e["reason"] for e in env.events("cfg-a")] == ["SuccessfulCreate"]

    written = (
        env.raw.merge_patch(
            f"{CONFIG}/kvd-config",
            {"data": {"useEmulation": "false", "memoryOverhead": "100Mi"}},
        )
        if _exists(env.raw, f"{CONFIG}/kvd-config")
        else env.raw.create(
            CONFIG,
            {
                "metadata": {"name": "kvd-config"},
                "data": {"useEmulation": "false", "memoryOverhead": "100Mi"},
            },
        )
    )
    version = written["metadata"]["resourceVersion"]
    wait_for(  # the controller parses the ConfigMap as its informer sees it change
        f"the controller to load the ConfigMap at resourceVersion {version}",
        lambda: any(e.get("resource_version") == version for e in env.logged("config_loaded")),
    )
    second = env.the_pod(env.create_vmi("cfg-b"))["spec"]["containers"][0]
    assert "--allow-emulation" not in second["args"]
    assert second["resources"]["requests"]["memory"] == "228Mi"
    env.raw.delete(f"{CONFIG}/kvd-config")


def test_the_pods_grace_is_the_vmis_own_and_a_configmap_grace_is_named_as_no_setting(
    env: Env,
) -> None:
    """KubeVirt has no cluster-wide grace period: the VMI's (defaulted to 30) is the launcher's,
    the pod's adds the margin, and a ConfigMap that sets one is told it is no kvd setting."""
    env.raw.create(
        CONFIG,
        {
            "metadata": {"name": "kvd-config"},
            "data": {"terminationGracePeriodSeconds": "99", "gracePeriodMarginSeconds": "5"},
        },
    )
    try:
        # the controller parses the ConfigMap as it changes: once it has named the key, the
        # margin of 5 is in force for the pods below
        wait_for(
            "the controller to name terminationGracePeriodSeconds in its log",
            lambda: any(
                str(e.get("problem")).startswith("terminationGracePeriodSeconds: not a kvd setting")
                for e in env.logged("config_invalid")
            ),
        )
        for name, spec, grace in (
            ("grace-7", {"terminationGracePeriodSeconds": 7}, 7),
            ("grace-default", {}, 30),
        ):
            pod = env.the_pod(env.create_vmi(name, **spec))
            args = pod["spec"]["containers"][0]["args"]
            assert args[args.index("--grace-period-seconds") + 1] == str(grace), name
            assert pod["spec"]["terminationGracePeriodSeconds"] == grace + 5, name
    finally:
        env.raw.delete(f"{CONFIG}/kvd-config")


def test_missing_claim_waits_with_a_condition_then_creates(env: Env) -> None:
    vmi = env.create_vmi(
        "claim",
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "later"}}],
    )
    wait_for("Synchronized=False", lambda: env.condition("claim", "Synchronized"))
    synchronized = env.condition("claim", "Synchronized") or {}
    assert synchronized["reason"] == "FailedPvcNotFound"
    assert "default/later" in synchronized["message"]
    assert env.vmi("claim")["status"]["phase"] == "Pending"
    assert env.pods_of(vmi) == []
    assert "FailedPvcNotFound" in [e["reason"] for e in env.events("claim")]
    env.raw.create(
        "/api/v1/namespaces/default/persistentvolumeclaims",
        {
            "metadata": {"name": "later"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    pod = env.the_pod(vmi)
    assert {
        "name": "vol-data",
        "persistentVolumeClaim": {"claimName": "later", "readOnly": False},
    } in pod["spec"]["volumes"]
    wait_for("Scheduling", lambda: _phase(env.vmi("claim")) == "Scheduling")
    assert env.condition("claim", "Synchronized") is None


def test_the_claims_volume_mode_shapes_the_pod(env: Env) -> None:
    """The controller reads each claim: a Block one is mapped into the launcher as a device
    (a kubelet refuses to mount it), a Filesystem one mounted, at the path the launcher reads."""
    for name, mode in (("raw-blocks", "Block"), ("plain-files", "Filesystem")):
        env.raw.create(
            "/api/v1/namespaces/default/persistentvolumeclaims",
            {
                "metadata": {"name": name},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "volumeMode": mode,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
    vmi = env.create_vmi(
        "modes",
        volumes=[
            {"name": "a", "persistentVolumeClaim": {"claimName": "raw-blocks"}},
            {"name": "b", "persistentVolumeClaim": {"claimName": "plain-files"}},
        ],
    )
    compute = env.the_pod(vmi)["spec"]["containers"][0]
    assert compute["volumeDevices"] == [
        {"name": "vol-a", "devicePath": "/var/run/kvd/pvcs/raw-blocks"}
    ]
    mounts = {m["name"]: m["mountPath"] for m in compute["volumeMounts"]}
    assert mounts["vol-b"] == "/var/run/kvd/pvcs/plain-files" and "vol-a" not in mounts


def test_pod_trouble_is_carried_over_and_running_schedules(env: Env) -> None:
    vmi = env.create_vmi("sched")
    pod = env.the_pod(vmi)
    unschedulable = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    env.pod_status(
        pod,
        {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": unschedulable}
            ],
        },
    )  # fmt: skip
    wait_for("PodScheduled=False", lambda: env.condition("sched", "PodScheduled"))
    assert (env.condition("sched", "PodScheduled") or {})["message"] == unschedulable
    env.pod_status(
        pod,
        {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [_compute(ready=True, state={"running": {}})],
        },
        node="n1",
    )
    wait_for("Scheduled", lambda: _phase(env.vmi("sched")) == "Scheduled")
    vmi = env.vmi("sched")
    assert vmi["status"]["nodeName"] == "n1"
    assert vmi["status"]["activePods"] == {pod["metadata"]["uid"]: "n1"}
    assert vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == "n1"
    assert env.condition("sched", "PodScheduled") is None


def test_pod_failing_before_scheduled_fails_the_vmi_with_its_reason(env: Env) -> None:
    vmi = env.create_vmi("oom")
    pod = env.the_pod(vmi)
    env.pod_status(
        pod,
        {
            "phase": "Failed",
            "containerStatuses": [
                _compute(state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
            ],
        },
        node="n1",
    )
    wait_for("Failed", lambda: _phase(env.vmi("oom")) == "Failed")
    assert env.vmi("oom")["status"]["reason"] == "OOMKilled"
    assert "OOMKilled" in [e["reason"] for e in env.events("oom")]
    assert len(env.pods_of(vmi)) == 1  # kept, for its logs, until the VMI is deleted


def test_delete_removes_pods_then_the_finalizer(env: Env) -> None:
    vmi = env.create_vmi("gone")
    env.the_pod(vmi)
    wait_for("finalizer", lambda: env.vmi("gone")["metadata"].get("finalizers"))
    env.raw.delete(f"{VMIS}/gone")
    wait_for("VMI gone", lambda: not _exists(env.raw, f"{VMIS}/gone"))
    assert env.pods_of(vmi) == []
    assert "SuccessfulDelete" in [e["reason"] for e in env.events("gone")]


def test_watchdog_fails_vmis_without_pods_on_a_silent_node(env: Env) -> None:
    old = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fresh = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, beat in (("silent", old), ("alive", fresh)):
        env.raw.create(
            "/api/v1/nodes",
            {
                "metadata": {
                    "name": name,
                    "labels": {"kubevirt.io/schedulable": "true"},
                    "annotations": {"kubevirt.io/heartbeat": beat},
                }
            },
        )
    orphan = env.create_vmi("orphan")
    kept = env.create_vmi("kept")
    elsewhere = env.create_vmi("elsewhere")
    for vmi, node in ((orphan, "silent"), (kept, "silent"), (elsewhere, "alive")):
        pod = env.the_pod(vmi)
        env.pod_status(pod, {"phase": "Running"}, node=node)
        name = vmi["metadata"]["name"]
        wait_for("Scheduled", lambda n=name: _phase(env.vmi(n)) == "Scheduled")
        env.raw.merge_patch(f"{VMIS}/{name}", {"status": {"phase": "Running"}})  # the handler's
    # In life the handler's Running is long known when a launcher is lost: the controller's
    # cache holds every Running VMI before the pod fails (else it judges a Scheduled one).
    running = sum(_phase(v) == "Running" for v in env.raw.get(VMIS)["items"])
    wait_for(
        f"the controller's cache to hold the {running} Running VMIs",
        lambda: env.cached_phases().get("Running") == running,
        diagnose=env.cached_phases,
    )
    env.pod_status(env.pods_of(orphan)[0], {"phase": "Failed"})  # launcher lost, node silent

    wait_for("orphan Failed", lambda: _phase(env.vmi("orphan")) == "Failed", timeout=30)
    assert env.vmi("orphan")["status"]["reason"] == "NodeUnresponsive"
    wait_for(  # the Event follows the status write
        "a NodeUnresponsive Event",
        lambda: "NodeUnresponsive" in [e["reason"] for e in env.events("orphan")],
    )
    node = env.raw.get("/api/v1/nodes/silent")
    assert node["metadata"]["labels"]["kubevirt.io/schedulable"] == "false"
    assert env.vmi("kept")["status"]["phase"] == "Running"  # its pod still runs
    assert env.vmi("elsewhere")["status"]["phase"] == "Running"
    alive = env.raw.get("/api/v1/nodes/alive")
    assert alive["metadata"]["labels"]["kubevirt.io/schedulable"] == "true"


def _exists(raw: client.Raw, path: str) -> bool:
    try:
        raw.get(path)
    except client.ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True


def _compute(*, state: Json, ready: bool = False) -> Json:
    """A container status with the fields the official client's models require."""
    return {
        "name": "compute",
        "image": "kvd",
        "imageID": "",
        "restartCount": 0,
        "ready": ready,
        "state": state,
    }


def test_a_controller_that_loses_its_lease_stops_and_exits(env: Env, tmp_path: Path) -> None:
    """Another holder takes the Lease (as after a partition): the controller stops working and
    exits 1 within its renew deadline, so a supervisor starts it over as a candidate."""
    env.raw.create("/api/v1/namespaces", {"metadata": {"name": "lease-test"}})
    log = tmp_path / "loser.log"
    args = [
        KVD, "controller", "--kubeconfig", str(env.server.kubeconfig), "--namespace", "lease-test",
        "--launcher-dir", str(env.launcher_dir), "--identity", "loser",
        "--lease-seconds", "3", "--renew-seconds", "2", "--retry-seconds", "0.5",
    ]  # fmt: skip
    with log.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "kvd controller: ready loser (leading)\n"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        env.raw.merge_patch(
            "/apis/coordination.k8s.io/v1/namespaces/lease-test/leases/kvd-controller",
            {"spec": {"holderIdentity": "thief", "renewTime": now, "acquireTime": now}},
        )
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "leadership_lost" in log.read_text()


def _phase(vmi: Json) -> str:
    return str((vmi.get("status") or {}).get("phase") or "")
