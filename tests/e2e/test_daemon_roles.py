"""Each daemon's role is exactly what its code uses: derived from the API server's audit log.

`kvd local up` runs the node, the handler and the controller each as itself (a client
certificate for `system:node:<name>`, the `kvd-handler` and `kvd-controller` ServiceAccounts'
tokens), with the rules of `kvd.api.rbac`. This module drives the cluster through every path
that makes one of those daemons call the API — a VMI booted and its console opened, a
VirtualMachine started and stopped with kvdctl, ControllerService called over gRPC, a replica
set scaled up and down, a VMI whose claim does not exist, a node whose heartbeat is stale, a
pod with a Secret, a claim, a claim the node provisions and a ServiceAccount token, deletions, a
node that restarts — then reads `DATA_DIR/logs/audit.log` and fails:

- on any call of a daemon that was refused (403): the role lacks a rule the code needs;
- on any rule of a daemon's role that no call of that daemon used: the role grants too much.

So removing a rule from `kvd.api.rbac` fails `test_every_call_of_each_daemon_was_allowed`, and
adding one nothing needs fails `test_every_rule_of_each_daemon_was_used`.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
import yaml

from kvd.api import keys, rbac
from kvd.local import install
from tests.e2e.conftest import E2E, vmi_manifest
from tests.e2e.prerequisites import volume_and_claim
from tests.e2e.test_console import KVDCTL, Terminal
from tests.local import kubectl
from tests.local.node.conftest import kill
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

Json = dict[str, Any]
KVD_NAMESPACE = install.NAMESPACE  # the chart's release: the daemons' ServiceAccounts
MARKER = "KVD-ROLES-BOOTED"


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str  # with its subresource: pods/status
    namespace: str
    name: str
    code: int

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.resource}.{self.group or 'core'}{named}{where} → {self.code}"


def _calls(audit: Path) -> dict[str, list[Call]]:
    """Every call in the log, by the user that made it."""
    by_user: dict[str, list[Call]] = {}
    for line in audit.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if ref is None or (event["stage"] == "ResponseStarted" and event["verb"] != "watch"):
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        name = ref.get("name", "")
        if not name and event["verb"] in ("list", "watch"):  # kube's RequestInfo does the same
            name = _field_name(event["requestURI"])
        call = Call(
            event["verb"],
            ref.get("apiGroup", ""),
            resource,
            ref.get("namespace", ""),
            name,
            event["responseStatus"]["code"],
        )
        by_user.setdefault(event["user"]["username"], []).append(call)
    return by_user


def _field_name(uri: str) -> str:
    """The name a list or watch asks for with `fieldSelector=metadata.name=<name>`."""
    for selector in parse_qs(urlsplit(uri).query).get("fieldSelector", []):
        for term in selector.split(","):
            key, _, value = term.partition("=")
            if key == "metadata.name":
                return value.lstrip("=")
    return ""


def _template(spec: Json) -> Json:
    """A VMI spec for a VM's or a replica set's template: no grace, to stop at once."""
    return {**json.loads(json.dumps(spec)), "terminationGracePeriodSeconds": 0}


def _daemons(e2e: E2E) -> dict[str, tuple[tuple[Json, str], ...]]:
    """Each daemon's user and its rules, with the namespace a Role's rules hold in ("" for a
    ClusterRole's)."""
    controller = rbac.service_account_user(rbac.CONTROLLER, KVD_NAMESPACE)
    handler = rbac.service_account_user(rbac.HANDLER, KVD_NAMESPACE)
    return {
        controller: (
            *((r, "") for r in rbac.CONTROLLER_RULES),
            *((r, KVD_NAMESPACE) for r in rbac.CONTROLLER_NAMESPACE_RULES),
        ),
        handler: tuple((r, "") for r in rbac.HANDLER_RULES),
        rbac.node_user(e2e.cluster.node_name): tuple((r, "") for r in rbac.LOCAL_NODE_RULES),
    }


def _used(rule: Json, namespace: str, calls: list[Call]) -> list[str]:
    """The parts of `rule` (verb, group, resource, name) that no allowed call in `calls` used."""
    unused = []
    for group in rule["apiGroups"]:
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                for name in rule.get("resourceNames") or [""]:
                    if not any(
                        c.verb == verb
                        and c.group == group
                        and c.resource == resource
                        and (not name or c.name == name)
                        and (not namespace or c.namespace == namespace)
                        and c.code != 403
                        for c in calls
                    ):
                        unused.append(f"{verb} {resource}.{group or 'core'} {name}".rstrip())
    return unused


@pytest.fixture(scope="module")
def exercised(e2e: E2E) -> Iterator[E2E]:
    """Every path through which a daemon calls the API, once."""
    # a node whose handler stopped answering ten minutes ago: the controller's watchdog marks it
    stale = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    ghost = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "roles-ghost",
            "labels": {keys.SCHEDULABLE: "true"},
            "annotations": {keys.HEARTBEAT: stale},
        },
    }
    e2e.apply(yaml.safe_dump(ghost))
    # a VMI that boots (the controller makes its pod, the handler runs it, the node starts it)
    e2e.apply(vmi_manifest("roles-vm", marker=MARKER))
    # a VMI whose claim does not exist (the controller looks it up)
    missing = yaml.safe_load(vmi_manifest("roles-pvc", marker="unused", cloud_init_disk=False))
    missing["spec"]["domain"]["devices"]["disks"].append({"name": "data", "disk": {}})
    missing["spec"]["volumes"].append(
        {"name": "data", "persistentVolumeClaim": {"claimName": "roles-missing"}}
    )
    e2e.apply(yaml.safe_dump(missing))
    # a pod with a Secret, a claim and the default ServiceAccount's token (the node fetches
    # each, and the claim's volume)
    e2e.kubectl("create", "secret", "generic", "roles-secret", "--from-literal=k=v")
    claimed = e2e.cluster.data_dir / "roles-claimed"
    claimed.mkdir()
    e2e.apply(
        volume_and_claim(
            "roles-claim",
            mode="Filesystem",
            size=2**20,
            source={"hostPath": {"path": str(claimed), "type": "Directory"}},
        )
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "roles-pod"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "1000"],
                    "volumeMounts": [
                        {"name": "s", "mountPath": "/etc/s"},
                        {"name": "c", "mountPath": "/data"},
                        {"name": "p", "mountPath": "/provisioned"},
                    ],
                }
            ],
            "volumes": [
                {"name": "s", "secret": {"secretName": "roles-secret"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "roles-claim"}},
                {"name": "p", "persistentVolumeClaim": {"claimName": "roles-provisioned"}},
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }
    # ... and a claim of the default class, which the node's storage controller provisions for
    # the pod, binds, and deletes with its data once the claim goes
    provisioned = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "roles-provisioned"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    e2e.apply(yaml.safe_dump(provisioned))
    e2e.apply(yaml.safe_dump(pod))

    # a VirtualMachine started and stopped, a replica set scaled up and down
    vm = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "roles-machine"},
        "spec": {"running": False, "template": {"spec": _template(missing["spec"])}},
    }
    vm["spec"]["template"]["spec"]["volumes"] = vm["spec"]["template"]["spec"]["volumes"][:1]
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [
        {"name": "containerdisk", "disk": {"bus": "virtio"}}
    ]
    e2e.apply(yaml.safe_dump(vm))
    # started and stopped with kvdctl: the controller reads the VM and its VMI, then patches
    data = ["--data-dir", str(e2e.cluster.data_dir)]
    subprocess.run([KVDCTL, "start", "roles-machine", *data], check=True, timeout=60)
    replicas = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceReplicaSet",
        "metadata": {"name": "roles-set"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"set": "roles"}},
            "template": {
                "metadata": {"labels": {"set": "roles"}},
                "spec": vm["spec"]["template"]["spec"],
            },
        },
    }
    e2e.apply(yaml.safe_dump(replicas))
    e2e.wait_vmi("roles-vm", "Running", timeout=180)
    # its console, through the controller (TokenReview, SubjectAccessReview) and the handler
    # (TokenReview of the controller's token)
    terminal = Terminal("roles-vm", "--data-dir", str(e2e.cluster.data_dir))
    try:
        terminal.expect(MARKER, timeout=90)
        terminal.send(b"\x1d")
        assert terminal.proc.wait(timeout=10) == 0
    finally:
        terminal.close()
    wait_for(
        "the pod with a Secret and a token to run",
        lambda: (e2e.cluster.pod("roles-pod") or {}).get("status", {}).get("phase") == "Running",
        timeout=60,
    )
    wait_for(
        "the claim-less VMI to say its claim is missing",
        lambda: any(
            c.get("reason") == "FailedPvcNotFound"
            for c in ((e2e.vmi("roles-pvc") or {}).get("status") or {}).get("conditions") or []
        ),
        timeout=60,
    )
    wait_for(
        "the watchdog to mark the silent node unschedulable",
        lambda: (
            json.loads(e2e.kubectl("get", "node", "roles-ghost", "-o", "json").stdout)["metadata"][
                "labels"
            ].get(keys.SCHEDULABLE)
            == "false"
        ),
        timeout=90,
    )
    e2e.wait_vmi("roles-machine", "Running", timeout=180)
    subprocess.run([KVDCTL, "stop", "roles-machine", *data], check=True, timeout=60)
    _controller_service_call(e2e)
    wait_for("the stopped VM's VMI to go", lambda: e2e.vmi("roles-machine") is None, timeout=120)

    def of_the_set() -> list[str]:
        listed: str = e2e.kubectl("get", "vmis", "-l", "set=roles", "-o", "name").stdout
        return listed.split()

    wait_for("the replica set's VMI", of_the_set, timeout=60)
    e2e.kubectl("scale", "vmirs", "roles-set", "--replicas=0")
    wait_for("the replica set to scale down", lambda: not of_the_set(), timeout=120)
    # DataVolumes: a VM's template makes one whose claim waits on a storage class; one on a
    # hand-made volume imports blank, and the controller reads its importer's log
    blank_dir = e2e.cluster.data_dir / "roles-blank"
    blank_dir.mkdir()
    pv = yaml.safe_load_all(
        volume_and_claim(
            "roles-blank",
            mode="Filesystem",
            size=2**22,
            source={"hostPath": {"path": str(blank_dir), "type": "Directory"}},
        )
    )
    e2e.apply(yaml.safe_dump(next(iter(pv))))
    blank = {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "roles-blank"},
        "spec": {
            "source": {"blank": {}},
            "storage": {
                "storageClassName": "",
                "volumeName": "roles-blank-pv",
                "resources": {"requests": {"storage": "4Mi"}},
            },
        },
    }
    waiting = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "roles-dv-vm"},
        "spec": {
            "running": False,
            "dataVolumeTemplates": [
                {
                    "metadata": {"name": "roles-dv"},
                    "spec": {
                        "source": {"blank": {}},
                        "storage": {
                            "storageClassName": "roles-class",
                            "resources": {"requests": {"storage": "4Mi"}},
                        },
                    },
                }
            ],
            "template": {"spec": _template(vm["spec"]["template"]["spec"])},
        },
    }
    e2e.apply(yaml.safe_dump_all([blank, waiting]))

    def dv_phase(name: str) -> str:
        done = e2e.kubectl("get", "dv", name, "-o", "jsonpath={.status.phase}", check=False)
        return str(done.stdout)

    wait_for(
        "the blank DataVolume to succeed",
        lambda: dv_phase("roles-blank") == "Succeeded",
        timeout=90,
        diagnose=lambda: (
            e2e.kubectl("get", "dv,pvc,pv,pods", "-o", "wide").stdout
            + e2e.kubectl("get", "events").stdout[-4000:]
        ),
    )
    wait_for(
        "the VM's DataVolume to wait for its claim",
        lambda: dv_phase("roles-dv") in ("Pending", "WaitForFirstConsumer", "ImportScheduled"),
    )
    e2e.kubectl("delete", "vm", "roles-dv-vm", "--wait=true", "--timeout=120s")
    e2e.kubectl("delete", "dv", "roles-blank", "--wait=true", "--timeout=120s")
    e2e.kubectl("delete", "pv", "roles-blank-pv")
    for kind, name in (
        ("vm", "roles-machine"),
        ("vmirs", "roles-set"),
        ("vmi", "roles-vm"),
        ("vmi", "roles-pvc"),
        ("pod", "roles-pod"),
    ):
        e2e.kubectl("delete", kind, name, "--wait=true", "--timeout=120s")
    e2e.kubectl("delete", "node", "roles-ghost")
    e2e.kubectl("delete", "pvc", "roles-claim")
    e2e.kubectl("delete", "pv", "roles-claim-pv")
    e2e.kubectl("delete", "pvc", "roles-provisioned")
    wait_for(
        "the provisioned volume to be reclaimed",
        lambda: "pvc-" not in e2e.kubectl("get", "pv", "-o", "name").stdout,
        timeout=60,
    )
    # a node that restarts finds its Node and brings its labels up to date
    kill(e2e.cluster.components()["node"])
    e2e.cluster.up()
    yield e2e


def _controller_service_call(e2e: E2E) -> None:
    """ControllerService over gRPC, as a client holding a token calls it: the controller
    reviews the token (TokenReview) and the caller's right (SubjectAccessReview)."""
    from kvd import rpc_auth  # noqa: PLC0415
    from kvd.rpc.controller.v1 import controller_pb2, controller_pb2_grpc  # noqa: PLC0415

    host, port = e2e.listening("controller", "grpc")
    secret = e2e.cluster.raw.get(f"/api/v1/namespaces/{KVD_NAMESPACE}/secrets/kvd-controller-tls")
    ca = base64.b64decode(secret["data"]["ca.crt"])
    token = yaml.safe_load(e2e.cluster.kubeconfig.read_text())["users"][0]["user"]["token"]
    # the chart's certificate names the controller's Service, as kvdctl dials it
    name = ("grpc.ssl_target_name_override", f"kvd-controller.{KVD_NAMESPACE}.svc")
    channel = rpc_auth.authorized_channel(
        grpc.secure_channel(f"{host}:{port}", grpc.ssl_channel_credentials(ca), options=[name]),
        token,
    )
    try:
        stub = controller_pb2_grpc.ControllerServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as caught:
            stub.StopVirtualMachine(
                controller_pb2.StopVirtualMachineRequest(namespace="default", name="roles-none"),
                timeout=30,
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        channel.close()


def test_every_call_of_each_daemon_was_allowed(exercised: E2E) -> None:
    calls = _calls(exercised.cluster.data_dir / "logs" / "audit.log")
    refused = {
        user: sorted({str(c) for c in calls.get(user, []) if c.code == 403})
        for user in _daemons(exercised)
    }
    assert refused == {user: [] for user in refused}, (
        "calls a daemon's role does not grant (add the rule to kvd/api/rbac.py):\n"
        + json.dumps(refused, indent=2)
    )
    for user in _daemons(exercised):
        assert calls.get(user), f"{user} made no call at all: is it running as itself?"


def test_every_rule_of_each_daemon_was_used(exercised: E2E) -> None:
    calls = _calls(exercised.cluster.data_dir / "logs" / "audit.log")
    unused = {
        user: [part for rule, ns in rules for part in _used(rule, ns, calls.get(user, []))]
        for user, rules in _daemons(exercised).items()
    }
    assert unused == {user: [] for user in unused}, (
        "rules no call used (remove them from kvd/api/rbac.py, or exercise the path here):\n"
        + json.dumps(unused, indent=2)
    )


def test_no_daemon_runs_as_the_admin(exercised: E2E) -> None:
    agents: dict[str, set[str]] = {}
    for line in (exercised.cluster.data_dir / "logs" / "audit.log").read_text().splitlines():
        event = json.loads(line)
        agent = event["userAgent"].split("/")[0]
        if agent in ("kvd-controller", "kvd-handler", "kvd-local-node"):
            agents.setdefault(agent, set()).add(event["user"]["username"])
    assert agents == {
        "kvd-controller": {rbac.service_account_user(rbac.CONTROLLER, KVD_NAMESPACE)},
        "kvd-handler": {rbac.service_account_user(rbac.HANDLER, KVD_NAMESPACE)},
        "kvd-local-node": {rbac.node_user(exercised.cluster.node_name)},
    }


@pytest.mark.parametrize(
    ("component", "args"),
    [
        ("controller", ("get", "secrets", "-n", KVD_NAMESPACE)),  # it never reads a Secret
        ("handler", ("run", "intruder", "--image=busybox")),  # only the controller makes pods
        ("node", ("delete", "namespace", KVD_NAMESPACE, "--dry-run=server")),
    ],
)
def test_a_daemons_own_credentials_are_refused_outside_its_role(
    exercised: E2E, component: str, args: tuple[str, ...]
) -> None:
    cluster = exercised.cluster
    if component == "node":
        kubeconfig, token = cluster.data_dir / "credentials" / "node.kubeconfig", []
    else:  # the daemon's own ServiceAccount token, as its pod has it
        answer = cluster.raw.create(
            f"/api/v1/namespaces/{KVD_NAMESPACE}/serviceaccounts/kvd-{component}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        kubeconfig, token = cluster.kubeconfig, [f"--token={answer['status']['token']}"]
    done = kubectl.run(kubeconfig, cluster.data_dir, *token, *args, check=False)
    assert done.returncode == 1
    assert "Forbidden" in done.stderr and "cannot" in done.stderr, done.stderr
