"""VMI → launcher pod, as tables (pure)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kvd.api import kinds
from kvd.api.vmi import VirtualMachineInstance
from kvd.controller import render

CONFIG = render.RenderConfig(launcher_host_dir="/var/lib/kvd/local/launchers", image="kvd:1")


def vmi(**spec: Any) -> VirtualMachineInstance:
    base: dict[str, Any] = {
        "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
        "volumes": [{"name": "root", "containerDisk": {"image": "kvd-demo"}}],
    }
    base.update(spec)
    loaded = kinds.load(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u-1"},
            "spec": base,
        }
    )
    assert isinstance(loaded, VirtualMachineInstance)
    return loaded


def compute(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["spec"]["containers"][0])


def test_the_pod_belongs_to_its_vmi_and_runs_the_launcher() -> None:
    pod = render.launcher_pod(vmi(terminationGracePeriodSeconds=40), CONFIG)
    meta = pod["metadata"]
    assert meta["generateName"] == "virt-launcher-demo-" and meta["namespace"] == "ns"
    assert meta["labels"] == {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": "u-1"}
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "VirtualMachineInstance",
        "u-1",
        True,
    )
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 55
    assert spec["nodeSelector"] == {"kubevirt.io/schedulable": "true"}
    c = compute(pod)
    assert (c["name"], c["image"], c["command"]) == ("compute", "kvd:1", ["kvd", "launcher"])
    args = c["args"]
    assert args[args.index("--uid") + 1] == "u-1"
    assert args[args.index("--run-dir") + 1] == "/var/run/kvd/launchers/$(POD_UID)"
    assert args[args.index("--grace-period-seconds") + 1] == "40"
    assert "--pod-network" in args and "--allow-emulation" in args
    assert {"name": "launchers", "mountPath": "/var/run/kvd/launchers"} in c["volumeMounts"]
    # a real cluster's runtime gives neither NET_ADMIN nor SYS_NICE by default
    assert c["securityContext"] == {"capabilities": {"add": ["NET_ADMIN", "NET_RAW", "SYS_NICE"]}}
    assert "securityContext" not in pod["spec"]["containers"][1]  # the console log needs none
    assert spec["volumes"][0] == {
        "name": "launchers",
        "hostPath": {"path": "/var/lib/kvd/local/launchers", "type": "Directory"},
    }
    console = pod["spec"]["containers"][1]
    assert console["name"] == "guest-console-log"
    assert "/var/run/kvd/launchers/$(POD_UID)/console.log" in console["args"][0]


@pytest.mark.parametrize(
    ("domain", "overhead", "expected"),
    [
        (
            {"resources": {"requests": {"memory": "128Mi"}}},
            "60Mi",
            {"memory": "188Mi", "cpu": "100m"},
        ),
        (
            {"memory": {"guest": "1Gi"}, "resources": {"requests": {"memory": "1Gi", "cpu": "2"}}},
            "100Mi",
            {"memory": "1124Mi", "cpu": "2"},
        ),
    ],
)
def test_requests_are_guest_memory_plus_overhead(
    domain: dict[str, Any], overhead: str, expected: dict[str, str]
) -> None:
    config = render.RenderConfig(launcher_host_dir="/l", memory_overhead=overhead)
    pod = render.launcher_pod(vmi(domain={"devices": {}, **domain}), config)
    assert compute(pod)["resources"]["requests"] == expected


@pytest.mark.parametrize(
    ("cpu", "ratio", "expected"),
    [
        pytest.param(None, 10, "100m", id="kubevirt-default"),
        pytest.param(None, 100, "10m", id="local-cluster"),
        pytest.param({"cores": 2, "sockets": 2, "threads": 1}, 10, "400m", id="topology"),
        pytest.param({"cores": 3}, 1, "3000m", id="cpu-per-vcpu"),
        pytest.param(None, 3, "334m", id="rounded-up"),
        pytest.param(None, 1000, "1m", id="smallest"),
    ],
)
def test_cpu_request_is_vcpus_over_the_allocation_ratio(
    cpu: dict[str, int] | None, ratio: int, expected: str
) -> None:
    domain: dict[str, Any] = {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}
    if cpu is not None:
        domain["cpu"] = cpu
    config = render.RenderConfig(launcher_host_dir="/l", cpu_allocation_ratio=ratio)
    pod = render.launcher_pod(vmi(domain=domain), config)
    assert compute(pod)["resources"]["requests"]["cpu"] == expected
    # KubeVirt's guest-console-log container requests 5m whatever the ratio
    assert pod["spec"]["containers"][1]["resources"]["requests"]["cpu"] == "5m"


def test_the_vmis_own_cpu_request_wins_over_the_ratio() -> None:
    domain = {"devices": {}, "resources": {"requests": {"memory": "64Mi", "cpu": "250m"}}}
    config = render.RenderConfig(launcher_host_dir="/l", cpu_allocation_ratio=100)
    pod = render.launcher_pod(vmi(domain=domain), config)
    assert compute(pod)["resources"]["requests"]["cpu"] == "250m"


def _claim(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


# As the controller reads them: the volumeMode decides how the launcher gets each claim.
CLAIMS = {
    "pvc-1": _claim("pvc-1", accessModes=["ReadWriteOnce"]),  # no volumeMode: Filesystem
    "files": _claim("files", volumeMode="Filesystem"),
    "blocks": _claim("blocks", volumeMode="Block"),
}


def _pvc(claim: str, *, read_only: bool = False) -> dict[str, Any]:
    return {
        "name": "vol-data",
        "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only},
    }


@pytest.mark.parametrize(
    ("volume", "pod_volume", "mount", "device"),
    [
        pytest.param(
            {"name": "root", "containerDisk": {"image": "kvd-demo"}},
            {"name": "vol-root", "image": {"reference": "kvd-demo"}},
            {
                "name": "vol-root",
                "mountPath": "/var/run/kvd/container-disks/root",
                "readOnly": True,
                "subPath": "disk",
            },
            None,
            id="container-disk",
        ),
        pytest.param(
            {
                "name": "root",
                "containerDisk": {"image": "quay.io/x/y:1", "path": "/images/a.qcow2"},
            },
            {"name": "vol-root", "image": {"reference": "quay.io/x/y:1"}},
            {
                "name": "vol-root",
                "mountPath": "/var/run/kvd/container-disks/root",
                "readOnly": True,
                "subPath": "images",
            },
            None,
            id="container-disk-path",
        ),
        pytest.param(
            {"name": "data", "persistentVolumeClaim": {"claimName": "pvc-1"}},
            _pvc("pvc-1"),
            {"name": "vol-data", "mountPath": "/var/run/kvd/pvcs/pvc-1", "readOnly": False},
            None,
            id="pvc-default-mode-is-mounted",
        ),
        pytest.param(
            {"name": "data", "persistentVolumeClaim": {"claimName": "files", "readOnly": True}},
            _pvc("files", read_only=True),
            {"name": "vol-data", "mountPath": "/var/run/kvd/pvcs/files", "readOnly": True},
            None,
            id="pvc-filesystem-is-mounted",
        ),
        pytest.param(
            {"name": "data", "persistentVolumeClaim": {"claimName": "blocks"}},
            _pvc("blocks"),
            None,
            {"name": "vol-data", "devicePath": "/var/run/kvd/pvcs/blocks"},
            id="pvc-block-is-a-device",
        ),
        pytest.param(
            {"name": "data", "persistentVolumeClaim": {"claimName": "blocks", "readOnly": True}},
            _pvc("blocks", read_only=True),  # a volumeDevice has no readOnly: the volume's is it
            None,
            {"name": "vol-data", "devicePath": "/var/run/kvd/pvcs/blocks"},
            id="pvc-block-read-only",
        ),
        pytest.param(
            {
                "name": "host-disk",
                "hostDisk": {
                    "path": "/var/data/disk.img",
                    "type": "DiskOrCreate",
                    "capacity": "1Gi",
                },
            },
            {
                "name": "vol-host-disk",
                "hostPath": {"path": "/var/data", "type": "DirectoryOrCreate"},
            },
            {"name": "vol-host-disk", "mountPath": "/var/run/kvd/host-disks/host-disk"},
            None,
            id="host-disk-or-create",
        ),
        pytest.param(
            {"name": "host-disk", "hostDisk": {"path": "/disk.img", "type": "Disk"}},
            {"name": "vol-host-disk", "hostPath": {"path": "/", "type": "Directory"}},
            {"name": "vol-host-disk", "mountPath": "/var/run/kvd/host-disks/host-disk"},
            None,
            id="host-disk-existing",
        ),
    ],
)
def test_volumes(
    volume: dict[str, Any],
    pod_volume: dict[str, Any],
    mount: dict[str, Any] | None,
    device: dict[str, Any] | None,
) -> None:
    pod = render.launcher_pod(vmi(volumes=[volume]), CONFIG, claims=CLAIMS)
    assert pod["spec"]["volumes"][1:] == [pod_volume]
    assert compute(pod)["volumeMounts"][1:] == ([mount] if mount else [])
    assert compute(pod).get("volumeDevices") == ([device] if device else None)


def test_the_launcher_looks_where_the_volumes_are() -> None:
    """Each kind of volume is found by the launcher under the directory its flag names."""
    args = compute(render.launcher_pod(vmi(), CONFIG))["args"]
    assert args[args.index("--pvc-dir") + 1] == render.PVC_DIR == "/var/run/kvd/pvcs"
    assert args[args.index("--host-disk-dir") + 1] == "/var/run/kvd/host-disks"
    assert args[args.index("--container-disk-dir") + 1] == "/var/run/kvd/container-disks"


def test_filesystem_claims_tell_the_launcher_their_size() -> None:
    """Bound: the claim's capacity; not yet (WaitForFirstConsumer): its request. Block claims
    have no disk.img to make."""
    claims = {
        "bound": {**_claim("bound"), "status": {"capacity": {"storage": "2Gi"}}},
        "waiting": _claim("waiting", resources={"requests": {"storage": "512Mi"}}),
        "blocks": CLAIMS["blocks"],
    }
    volumes = [
        {"name": n, "persistentVolumeClaim": {"claimName": n}}
        for n in ("bound", "waiting", "blocks")
    ]
    args = compute(render.launcher_pod(vmi(volumes=volumes), CONFIG, claims=claims))["args"]
    flags = [args[i + 1] for i, a in enumerate(args) if a == "--pvc-capacity"]
    assert flags == ["bound=2Gi", "waiting=512Mi"]


def test_a_pvc_and_a_host_disk_together() -> None:
    pod = render.launcher_pod(
        vmi(
            volumes=[
                {"name": "a", "persistentVolumeClaim": {"claimName": "blocks"}},
                {"name": "b", "persistentVolumeClaim": {"claimName": "files"}},
                {"name": "c", "hostDisk": {"path": "/v/c.img", "type": "Disk"}},
            ]
        ),
        CONFIG,
        claims=CLAIMS,
    )
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["launchers", "vol-a", "vol-b", "vol-c"]
    assert [m["name"] for m in compute(pod)["volumeMounts"]] == ["launchers", "vol-b", "vol-c"]
    assert [d["name"] for d in compute(pod)["volumeDevices"]] == ["vol-a"]


KERNEL_MOUNT = {"name": "kernel-boot", "mountPath": "/var/run/kvd/kernel-boot", "readOnly": True}


@pytest.mark.parametrize(
    ("container", "pod_volume"),
    [
        pytest.param(
            {
                "image": "registry:5000/kubevirt/alpine-ext-kernel-boot-demo:devel",
                "kernelPath": "/boot/vmlinuz-virt",
                "initrdPath": "/boot/initramfs-virt",
            },
            {
                "name": "kernel-boot",
                "image": {"reference": "registry:5000/kubevirt/alpine-ext-kernel-boot-demo:devel"},
            },
            id="kernel-and-initrd",
        ),
        pytest.param(
            {"image": "kvd-demo-kernel", "kernelPath": "/boot/vmlinuz", "imagePullPolicy": "Never"},
            {
                "name": "kernel-boot",
                "image": {"reference": "kvd-demo-kernel", "pullPolicy": "Never"},
            },
            id="pull-policy",
        ),
    ],
)
def test_the_kernel_boot_image_is_mounted_where_the_launcher_looks(
    container: dict[str, Any], pod_volume: dict[str, Any]
) -> None:
    """No volume of its own: the kernel boots from the image (an image volume, like a
    containerDisk), which the launcher reads at --kernel-boot-dir."""
    kernel_boot = {"kernelArgs": "console=ttyS0", "container": container}
    domain = {"devices": {}, "resources": {"requests": {"memory": "1Gi"}}}
    pod = render.launcher_pod(
        vmi(domain={**domain, "firmware": {"kernelBoot": kernel_boot}}, volumes=[]), CONFIG
    )
    assert pod["spec"]["volumes"][1:] == [pod_volume]
    assert compute(pod)["volumeMounts"][1:] == [KERNEL_MOUNT]
    args = compute(pod)["args"]
    assert args[args.index("--kernel-boot-dir") + 1] == KERNEL_MOUNT["mountPath"]
    # with a containerDisk too, each keeps its own volume
    both = render.launcher_pod(
        vmi(domain={**domain, "firmware": {"kernelBoot": kernel_boot}}), CONFIG
    )
    assert [v["name"] for v in both["spec"]["volumes"]] == ["launchers", "vol-root", "kernel-boot"]


def test_without_kernel_boot_there_is_no_kernel_boot_volume() -> None:
    pod = render.launcher_pod(vmi(), CONFIG)
    assert "kernel-boot" not in [v["name"] for v in pod["spec"]["volumes"]]
    assert KERNEL_MOUNT not in compute(pod)["volumeMounts"]


def test_cluster_settings_and_scheduling_constraints_carry_over() -> None:
    config = render.RenderConfig(launcher_host_dir="/l", allow_emulation=False)
    pod = render.launcher_pod(
        vmi(
            nodeSelector={"zone": "a"},
            tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        ),
        config,
    )
    assert "--allow-emulation" not in compute(pod)["args"]
    assert pod["spec"]["nodeSelector"] == {"zone": "a", "kubevirt.io/schedulable": "true"}
    assert pod["spec"]["tolerations"] == [
        {"key": "k", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_a_claim_the_caller_did_not_read_is_an_error_not_a_guess() -> None:
    """Mounting a Block claim would fail in the kubelet, so render never assumes a mode."""
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "unread"}}
    with pytest.raises(render.RenderError, match='claim "unread" was not read'):
        render.launcher_pod(vmi(volumes=[volume]), CONFIG, claims=CLAIMS)


def test_the_grace_period_is_the_defaulted_vmis() -> None:
    """kvd.api's default (30 s) reaches the launcher and the pod; render has none of its own."""
    pod = render.launcher_pod(vmi(), CONFIG)
    args = compute(pod)["args"]
    assert args[args.index("--grace-period-seconds") + 1] == "30"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30 + CONFIG.grace_margin_seconds
    undefaulted = dataclasses.replace(
        vmi(), spec=dataclasses.replace(vmi().spec, termination_grace_period_seconds=None)
    )
    with pytest.raises(render.RenderError, match="terminationGracePeriodSeconds is not set"):
        render.launcher_pod(undefaulted, CONFIG)


def test_kubevirts_fail_fast_annotation_makes_the_launcher_crash() -> None:
    """KubeVirt's func-test annotation (how its tests make a VM crash-loop) reaches the
    launcher as --simulate-crash; without it the launcher runs."""
    plain = vmi()
    annotated = dataclasses.replace(
        plain,
        metadata=dataclasses.replace(
            plain.metadata, annotations={"kubevirt.io/func-test-virt-launcher-fail-fast": "true"}
        ),
    )
    assert "--simulate-crash" in compute(render.launcher_pod(annotated, CONFIG))["args"]
    assert "--simulate-crash" not in compute(render.launcher_pod(plain, CONFIG))["args"]
