"""A VMI → its launcher pod (DESIGN.md §4), pure: what the controller creates, and what the
handler and the local node expect to find.

- `generateName: virt-launcher-<vmi>-`, an owner reference to the VMI (controller, blocking
  deletion), labels `kubevirt.io=virt-launcher` and `kubevirt.io/created-by=<vmi uid>`,
  `restartPolicy: Never`, the VMI's node selector plus `kubevirt.io/schedulable=true`, its
  tolerations and affinity, grace = the VMI's + a margin for the launcher's own shutdown.
- `compute` runs `kvd launcher` from kvd's image with its run dir at
  `<launcher root>/$(POD_UID)` on a hostPath shared with the handler (which finds the socket by
  the pod uid in `status.activePods`), `--pod-network` (the guest takes the pod's network),
  `--allow-emulation` when the cluster allows it. Memory request = guest memory + overhead; the
  CPU request is the VMI's, or, as KubeVirt renders it, vCPUs / the cluster's
  `cpuAllocationRatio` (100m per vCPU at KubeVirt's default 10), rounded up to a whole milli-CPU.
- Each containerDisk is an `image` volume (Kubernetes' OCI volume source; on the local node, the
  local image store) mounted read-only at `<container disk dir>/<volume>` from its `disk/`
  directory (or the directory of the VMI's `path`).
- Each PVC reaches the launcher at `<pvc dir>/<claim>`, as its `volumeMode` says, which is why
  the controller reads the claim first (as KubeVirt's renderer does): a Filesystem claim is
  mounted there (the launcher uses its `disk.img`), a Block claim is mapped there as a device
  (`volumeDevices`; a kubelet refuses to mount one). The launcher tells them apart by the path's
  file type, so it needs no API access; a Filesystem claim's size comes as `--pvc-capacity`, so
  the launcher can make a missing `disk.img`.
- A hostDisk's directory is a `hostPath` volume (`DirectoryOrCreate` for DiskOrCreate,
  `Directory` for Disk, as KubeVirt renders it) mounted at `<host disk dir>/<volume>`, where the
  launcher finds (or creates) the file under its own name: the pod needs nothing of the node's
  filesystem but that directory.
- A kernelBoot container's image is an `image` volume too, mounted read-only at the kernel boot
  dir, where the launcher finds `kernelPath` and `initrdPath` (and says which one the image
  lacks). An init container run from that image to copy them out would need programs in it,
  and kernel-boot images often hold nothing but the kernel and initrd; the image volume needs
  none, and is what containerDisks use already.
- `guest-console-log` follows the launcher's console log, so `kubectl logs <pod>
  -c guest-console-log` prints the guest's serial output, as in KubeVirt.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvd.api import codec, keys
from kvd.api.quantity import Quantity
from kvd.api.vmi import VirtualMachineInstance
from kvd.version import kvd_image

Json = dict[str, Any]

LAUNCHER_ROOT = "/var/run/kvd/launchers"
CONTAINER_DISK_DIR = "/var/run/kvd/container-disks"
PVC_DIR = "/var/run/kvd/pvcs"
HOST_DISK_DIR = "/var/run/kvd/host-disks"
KERNEL_BOOT_DIR = "/var/run/kvd/kernel-boot"


class RenderError(ValueError):
    """The VMI cannot be turned into a launcher pod; the message says which field and why."""


@dataclass(frozen=True, kw_only=True)
class RenderConfig:
    """The cluster's settings the pod depends on (the controller reads them from its ConfigMap)."""

    launcher_host_dir: str  # the hostPath the handler watches (its --launcher-dir)
    image: str = ""  # kvd's image; "" = this installation's
    allow_emulation: bool = True
    memory_overhead: str = "128Mi"  # measured: see kvd.controller.config
    grace_margin_seconds: int = 15
    cpu_allocation_ratio: int = 10  # KubeVirt's default: 100m per vCPU


# What the launcher takes beyond a container runtime's default set (kvd/launcher/app.py says
# what runs as root and why): NET_ADMIN for the pod network binding (bridge, tap, eth0's MAC,
# sysctls, nftables), NET_RAW for DHCP's raw sockets (not in every runtime's or policy's
# defaults), SYS_NICE to run its control path above its guest (kvd/priority.py). OpenShift's
# kvd-launcher SCC allows exactly these (tests/chart checks both lists agree).
LAUNCHER_CAPABILITIES = ("NET_ADMIN", "NET_RAW", "SYS_NICE")


def launcher_pod(
    vmi: VirtualMachineInstance, config: RenderConfig, *, claims: Mapping[str, Json] | None = None
) -> Json:
    """The launcher pod of `vmi`, a VMI as `kinds.load` returns it: defaulted and valid.

    `claims` holds the PersistentVolumeClaims its volumes name, by claim name, as the caller
    read them (their `volumeMode` decides how the pod gets each).
    """
    meta = vmi.metadata
    if not (meta.name and meta.namespace and meta.uid):
        raise RenderError("metadata.name, metadata.namespace and metadata.uid must be set")
    spec = vmi.spec
    grace = spec.termination_grace_period_seconds
    if grace is None:  # kvd.api.defaults gives every loaded VMI one
        raise RenderError(
            "spec.terminationGracePeriodSeconds is not set: the VMI was not defaulted"
        )
    volumes, mounts, devices = _volumes(vmi, config, claims or {})
    image = config.image or kvd_image()
    args = [
        "--namespace", meta.namespace, "--name", meta.name, "--uid", meta.uid,
        "--run-dir", f"{LAUNCHER_ROOT}/$(POD_UID)", "--grace-period-seconds", str(grace),
        "--container-disk-dir", CONTAINER_DISK_DIR, "--pvc-dir", PVC_DIR,
        "--host-disk-dir", HOST_DISK_DIR, "--kernel-boot-dir", KERNEL_BOOT_DIR, "--pod-network",
    ]  # fmt: skip
    args += _capacities(vmi, claims or {})
    if config.allow_emulation:
        args.append("--allow-emulation")
    if keys.LAUNCHER_FAIL_FAST in meta.annotations:  # KubeVirt's, for crash-loop tests
        args.append("--simulate-crash")
    pod_uid = {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}
    compute: Json = {
        "name": "compute",
        "image": image,
        "command": ["kvd", "launcher"],
        "args": args,
        "env": [
            pod_uid,
            {
                "name": "LIBVIRT_DEFAULT_URI",  # `kubectl exec … -c compute -- virsh …` works
                "value": f"qemu:///system?socket={LAUNCHER_ROOT}/$(POD_UID)/libvirt/sock/"
                "libvirt-sock",
            },
        ],
        "resources": {"requests": _requests(vmi, config)},
        "volumeMounts": mounts,
        # Beyond a container runtime's defaults: see LAUNCHER_CAPABILITIES.
        "securityContext": {"capabilities": {"add": list(LAUNCHER_CAPABILITIES)}},
    }
    if devices:
        compute["volumeDevices"] = devices
    console: Json = {
        "name": "guest-console-log",
        "image": image,
        "command": ["sh", "-c"],
        "args": [f'exec tail -n +1 -F "{LAUNCHER_ROOT}/$(POD_UID)/console.log" 2>/dev/null'],
        "env": [pod_uid],
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
        "volumeMounts": [{"name": "launchers", "mountPath": LAUNCHER_ROOT, "readOnly": True}],
    }
    pod_spec: Json = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": grace + config.grace_margin_seconds,
        "nodeSelector": {**spec.node_selector, keys.SCHEDULABLE: "true"},
        # The launcher never talks to the API (DESIGN §2): its pod holds no token, as KubeVirt's.
        "automountServiceAccountToken": False,
        "containers": [compute, console],
        "volumes": volumes,
    }
    if spec.tolerations:
        pod_spec["tolerations"] = [_json(t) for t in spec.tolerations]
    if spec.affinity:
        pod_spec["affinity"] = spec.affinity
    if spec.hostname:
        pod_spec["hostname"] = spec.hostname
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"virt-launcher-{meta.name}-",
            "namespace": meta.namespace,
            "labels": {keys.APP: keys.LAUNCHER, keys.CREATED_BY: meta.uid},
            "annotations": {keys.DOMAIN: meta.name},
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachineInstance",
                    "name": meta.name,
                    "uid": meta.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }


def _volumes(
    vmi: VirtualMachineInstance, config: RenderConfig, claims: Mapping[str, Json]
) -> tuple[list[Json], list[Json], list[Json]]:
    """The pod's volumes, the compute container's volumeMounts and its volumeDevices."""
    volumes: list[Json] = [
        {"name": "launchers", "hostPath": {"path": config.launcher_host_dir, "type": "Directory"}}
    ]
    mounts: list[Json] = [{"name": "launchers", "mountPath": LAUNCHER_ROOT}]
    devices: list[Json] = []
    for volume in vmi.spec.volumes:
        name = f"vol-{volume.name}"
        if volume.container_disk is not None:
            disk = volume.container_disk
            sub = posixpath.dirname(disk.path).lstrip("/") if disk.path else "disk"
            volumes.append({"name": name, "image": {"reference": disk.image}})
            mount: Json = {
                "name": name,
                "mountPath": f"{CONTAINER_DISK_DIR}/{volume.name}",
                "readOnly": True,
            }
            if sub:
                mount["subPath"] = sub
            mounts.append(mount)
        elif (claim := volume.claim()) is not None:  # a dataVolume is its DataVolume's claim
            read_only = bool(claim.read_only)
            volumes.append(
                {
                    "name": name,
                    "persistentVolumeClaim": {"claimName": claim.claim_name, "readOnly": read_only},
                }
            )
            target = f"{PVC_DIR}/{claim.claim_name}"
            if _volume_mode(volume.name, claim.claim_name, claims) == "Block":
                devices.append({"name": name, "devicePath": target})
            else:
                mounts.append({"name": name, "mountPath": target, "readOnly": read_only})
        elif volume.host_disk is not None:
            host = volume.host_disk
            kind = "Directory" if host.type == "Disk" else "DirectoryOrCreate"
            volumes.append(
                {"name": name, "hostPath": {"path": posixpath.dirname(host.path), "type": kind}}
            )
            mounts.append({"name": name, "mountPath": f"{HOST_DISK_DIR}/{volume.name}"})
    firmware = vmi.spec.domain.firmware
    kernel_boot = firmware.kernel_boot if firmware else None
    if kernel_boot is not None and kernel_boot.container is not None:
        container = kernel_boot.container
        source: Json = {"reference": container.image}
        if container.image_pull_policy:
            source["pullPolicy"] = container.image_pull_policy
        # Not "vol-…": every VMI volume's pod volume is, so no VMI volume name can clash.
        volumes.append({"name": "kernel-boot", "image": source})
        mounts.append({"name": "kernel-boot", "mountPath": KERNEL_BOOT_DIR, "readOnly": True})
    return volumes, mounts, devices


def _capacities(vmi: VirtualMachineInstance, claims: Mapping[str, Json]) -> list[str]:
    """`--pvc-capacity` for each filesystem claim: the launcher sizes a missing disk.img from
    it, as KubeVirt's does from the claim. Its capacity once bound, else what it requests (a
    WaitForFirstConsumer claim is bound only after this pod is scheduled; a volume is never
    smaller than the request)."""
    args: list[str] = []
    for volume in vmi.spec.volumes:
        claim = volume.claim()
        if claim is None or _volume_mode(volume.name, claim.claim_name, claims) == "Block":
            continue
        pvc = claims[claim.claim_name]
        size = ((pvc.get("status") or {}).get("capacity") or {}).get("storage") or (
            ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
        ).get("storage")
        flag = f"{claim.claim_name}={size}"
        if size and flag not in args:  # two volumes of one claim: said once
            args += ["--pvc-capacity", flag]
    return args


def _volume_mode(volume: str, claim: str, claims: Mapping[str, Json]) -> str:
    pvc = claims.get(claim)
    if pvc is None:  # the controller reads every claim first; say so if a caller did not
        raise RenderError(
            f'spec.volumes[{volume}].persistentVolumeClaim: claim "{claim}" was not read, and '
            "its volumeMode decides whether the pod mounts it or maps it as a device"
        )
    mode = (pvc.get("spec") or {}).get("volumeMode") or "Filesystem"  # Kubernetes' default
    return str(mode)


def _requests(vmi: VirtualMachineInstance, config: RenderConfig) -> Json:
    domain = vmi.spec.domain
    requests = domain.resources.requests if domain.resources else {}
    guest = (domain.memory.guest if domain.memory else None) or requests.get("memory")
    if guest is None:
        raise RenderError("spec.domain: neither memory.guest nor resources.requests.memory is set")
    overhead = Quantity.parse(config.memory_overhead)
    memory = Quantity.from_bytes(guest.bytes() + overhead.bytes())
    cpu = requests.get("cpu")
    if cpu is not None:  # the VMI's own request wins over the computed one, as in KubeVirt
        return {"memory": str(memory), "cpu": str(cpu)}
    return {"memory": str(memory), "cpu": f"{cpu_request_millis(vmi, config)}m"}


def cpu_request_millis(vmi: VirtualMachineInstance, config: RenderConfig) -> int:
    """KubeVirt's WithoutDedicatedCPU: vCPUs / ratio CPUs, in whole milli-CPUs rounded up (as
    the API server rounds a finer quantity), so no VMI requests nothing."""
    if config.cpu_allocation_ratio < 1:
        raise RenderError(f"cpuAllocationRatio {config.cpu_allocation_ratio} is below 1")
    cpu = vmi.spec.domain.cpu
    vcpus = (cpu.sockets or 1) * (cpu.cores or 1) * (cpu.threads or 1) if cpu else 1
    return -(-vcpus * 1000 // config.cpu_allocation_ratio)


def _json(value: Any) -> Json:
    encoded: Json = codec.encode(value)
    return encoded
