"""The VMIRS controller in a real `kvd controller` against a real API server, with no node: the
test plays the handler (Running, Ready) and scales with the real `kubectl scale`, through the
API server's scale subresource. With real guests: tests/e2e/test_vm.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kvd import timestamps
from kvd.api import phases
from kvd.kube import client
from tests.controller.conftest import VMIS, Env, Json
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # starts a kvd local apiserver and kvd controller processes

SETS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancereplicasets"


def create_set(env: Env, name: str, replicas: int, **spec: Any) -> Json:
    labels = {"kubevirt.io/vmReplicaSet": name}
    body = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
                    "terminationGracePeriodSeconds": 0,
                },
            },
            **spec,
        },
    }
    created: Json = env.raw.create(SETS, body)
    return created


def vmis_of(env: Env, name: str, *, alive: bool = True) -> list[Json]:
    items: list[Json] = env.raw.get(VMIS, {"labelSelector": f"kubevirt.io/vmReplicaSet={name}"})[
        "items"
    ]
    if alive:
        items = [v for v in items if not v["metadata"].get("deletionTimestamp")]
    return sorted(items, key=lambda v: v["metadata"]["creationTimestamp"] + v["metadata"]["name"])


def has(env: Env, name: str, count: int) -> list[Json]:
    def counted() -> list[Json] | None:
        vmis = vmis_of(env, name)
        return vmis if len(vmis) == count else None

    found: list[Json] = wait_for(
        f"{count} VMIs of {name}",
        counted,
        timeout=15,
        diagnose=lambda: f"VMIs: {[v['metadata']['name'] for v in vmis_of(env, name)]}",
    )
    return found


def run(env: Env, vmi: Json, phase: str = phases.RUNNING) -> None:
    """What the handler would write: the phase and the Ready condition."""
    name = vmi["metadata"]["name"]
    current = env.raw.get(f"{VMIS}/{name}")
    patch = dict(phases.move(current.get("status") or {}, phase, now=timestamps.now()))
    ok = "True" if phase == phases.RUNNING else "False"
    patch["conditions"] = [{"type": "Ready", "status": ok, "lastTransitionTime": timestamps.now()}]
    env.raw.merge_patch(f"{VMIS}/{name}", {"status": patch})


def status_of(env: Env, name: str) -> Json:
    return env.raw.get(f"{SETS}/{name}").get("status") or {}


def names(vmis: list[Json]) -> list[str]:
    return [v["metadata"]["name"] for v in vmis]


def test_replicas_scale_and_status(env: Env) -> None:
    create_set(env, "web", 3)
    vmis = has(env, "web", 3)
    rs = env.raw.get(f"{SETS}/web")
    for vmi in vmis:
        assert vmi["metadata"]["generateName"] == "web"
        assert vmi["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstanceReplicaSet",
                "name": "web",
                "uid": rs["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        run(env, vmi)
    wait_for("3 ready", lambda: status_of(env, "web").get("readyReplicas") == 3)
    assert status_of(env, "web")["labelSelector"] == "kubevirt.io/vmReplicaSet=web"

    # kubectl scale, through the scale subresource: the newest two go
    scaled = env.server.kubectl("scale", "vmirs", "web", "--replicas", "1")
    assert "scaled" in scaled.stdout
    assert names(has(env, "web", 1)) == names(vmis)[:1]
    scale = json.loads(env.server.kubectl("get", "--raw", f"{SETS}/web/scale").stdout)
    wait_for("status.replicas 1", lambda: status_of(env, "web").get("replicas") == 1)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1

    env.server.kubectl("scale", "vmirs", "web", "--replicas", "4")
    assert len(has(env, "web", 4)) == 4
    shown = env.server.kubectl("get", "vmirs", "web").stdout.split()
    assert shown[:5] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert shown[5:7] == ["web", "4"]
    env.raw.delete(f"{SETS}/web")
    wait_for("its VMIs gone with it", lambda: vmis_of(env, "web", alive=False) == [], timeout=20)


def test_a_deleted_or_failed_vmi_is_replaced(env: Env) -> None:
    create_set(env, "heal", 2)
    first, second = has(env, "heal", 2)
    env.raw.delete(f"{VMIS}/{first['metadata']['name']}")
    replaced = has(env, "heal", 2)
    assert first["metadata"]["uid"] not in [v["metadata"]["uid"] for v in replaced]
    run(env, second, phases.FAILED)
    wait_for(
        "the failed one replaced",
        lambda: (
            second["metadata"]["uid"]
            not in [v["metadata"]["uid"] for v in vmis_of(env, "heal", alive=False)]
            and len(vmis_of(env, "heal")) == 2
        ),
        timeout=15,
    )
    events = [e["reason"] for e in env.events("heal")]
    assert events.count("SuccessfulCreate") >= 4 and "SuccessfulDelete" in events
    env.raw.delete(f"{SETS}/heal")
    wait_for("its VMIs gone with it", lambda: vmis_of(env, "heal", alive=False) == [], timeout=20)


def test_a_paused_set_is_left_alone(env: Env) -> None:
    create_set(env, "still", 1)
    [vmi] = has(env, "still", 1)
    env.raw.merge_patch(f"{SETS}/still", {"spec": {"paused": True}})
    wait_for(
        "ReplicaPaused",
        lambda: (
            [c["type"] for c in status_of(env, "still").get("conditions") or []]
            == ["ReplicaPaused"]
        ),
    )
    env.server.kubectl("scale", "vmirs", "still", "--replicas", "3")
    env.raw.delete(f"{VMIS}/{vmi['metadata']['name']}")
    wait_for("the VMI gone", lambda: vmis_of(env, "still", alive=False) == [])
    assert "SuccessfulPaused" in [e["reason"] for e in env.events("still")]
    assert vmis_of(env, "still") == []  # neither replaced nor scaled
    env.raw.merge_patch(f"{SETS}/still", {"spec": {"paused": False}})
    has(env, "still", 3)
    wait_for("not paused", lambda: "conditions" not in status_of(env, "still"))
    env.raw.delete(f"{SETS}/still")
    wait_for("its VMIs gone with it", lambda: vmis_of(env, "still", alive=False) == [], timeout=20)


def test_an_orphan_the_selector_matches_is_adopted(env: Env) -> None:
    env.raw.create(
        VMIS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "stray", "labels": {"kubevirt.io/vmReplicaSet": "adopter"}},
            "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}},
        },
    )
    rs = create_set(env, "adopter", 1)
    wait_for(
        "the orphan adopted",
        lambda: (
            [r["uid"] for r in env.vmi("stray")["metadata"].get("ownerReferences") or []]
            == [rs["metadata"]["uid"]]
        ),
    )
    assert names(has(env, "adopter", 1)) == ["stray"]  # it counts: nothing new was made
    env.raw.delete(f"{SETS}/adopter")
    wait_for("its VMIs gone with it", lambda: _gone(env, "stray"), timeout=20)


def _gone(env: Env, name: str) -> bool:
    try:
        env.vmi(name)
    except client.ApiError as exc:
        return exc.not_found
    return False
