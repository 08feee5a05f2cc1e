"""KubeVirt's examples on a local cluster, with `kubectl apply -f` of the files themselves.

The rows docs/compatibility.md marks **runs** are mostly VMIs: each is applied, must reach
Running (its container disk images are imported into a private image store as the demo guest,
its kernel boot image as the demo guest's kernel and initrd at the paths the example names, and
the claims or host disk it presumes exist are made first, as a user would: see
`prerequisites`), and is deleted without a trace, one at a time. An EFI example's domain must
have the OVMF build its spec asks for (Secure Boot: the secure loader and SMM), and where the
demo guest boots with the example's own settings, its console must show which firmware started
it (and the kernel boot example, pointed at a kernel its image lacks, must say so on the VMI).
A VirtualMachine that runs is applied stopped, started and stopped with `kubectl patch`, its
printableStatus followed with `kubectl get vm -w`; the replica set runs its replicas and is
scaled with `kubectl scale`. The VirtualMachine marked **validates** is applied to check the
API server accepts it, and deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from kvd.api import deprecations
from kvd.api import vmi as vmitypes
from tests.api import compatibility
from tests.api.compatibility import Row
from tests.e2e import prerequisites, vms
from tests.e2e.conftest import E2E, Json
from tests.local.node.conftest import KVD, new_cluster
from tests.support.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration

ROWS = compatibility.rows()
RUNS = [r for r in ROWS if r.outcome == "runs"]
RUN_VMIS = [r for r in RUNS if r.kinds == ("VirtualMachineInstance",)]
RUN_VMS = [r for r in RUNS if r.kinds == ("VirtualMachine",)]
RUN_SETS = [r for r in RUNS if r.kinds == ("VirtualMachineInstanceReplicaSet",)]
ACCEPTED = [
    r
    for r in ROWS
    if r.outcome == "validates"
    and {d["kind"] for d in r.documents() if compatibility.is_kubevirt(d)}
    <= {"VirtualMachine", "VirtualMachineInstanceReplicaSet"}
]


# What the demo guest's console says once it has booted, for the examples it boots with their
# own settings. Under UEFI it needs 384Mi (guest/README.md), so with vmi-alpine-efi.yaml's
# 128Mi, OVMF runs shim, shim runs GRUB, and GRUB runs out of memory loading the kernel.
CONSOLE = {
    "kubevirt-examples/vmi-alpine-efi.yaml": r"Welcome to GRUB!",
    "kubevirt-examples/vmi-secureboot.yaml": r"^KVD-FIRMWARE uefi-secureboot\r?$",
    "kubevirt-examples/vmi-kernel-boot.yaml": r"^KVD-FIRMWARE bios\r?$",
}
BOOT = 240.0  # seconds to a console line under TCG (Secure Boot takes ~30 s alone)


def _specs(rows: list[Row]) -> list[vmitypes.VirtualMachineInstanceSpec]:
    """The VMI specs these rows run (a VM's or a replica set's template's)."""
    found = []
    for row in rows:
        for document in row.documents():
            spec = compatibility.vmi_spec(document)
            assert isinstance(spec, vmitypes.VirtualMachineInstanceSpec)
            found.append(spec)
    return found


def _images(rows: list[Row]) -> set[str]:
    """The container disk images of these VMIs, as kvd reads them (registryDisk included)."""
    return {v.container_disk.image for s in _specs(rows) for v in s.volumes if v.container_disk}


def _kernel_images(rows: list[Row]) -> set[tuple[str, str | None, str | None]]:
    """(image, kernelPath, initrdPath) of the kernel-boot containers of these VMIs."""
    found = set()
    for spec in _specs(rows):
        kernel_boot = spec.domain.firmware.kernel_boot if spec.domain.firmware else None
        if kernel_boot and kernel_boot.container:
            c = kernel_boot.container
            found.add((c.image, c.kernel_path, c.initrd_path))
    return found


@pytest.fixture(scope="module")
def e2e(guest_dir: Path) -> Iterator[E2E]:
    """A local cluster whose image store holds the examples' images, all the demo guest."""
    cluster = new_cluster()
    cluster = replace(cluster, image_store=cluster.data_dir / "images")
    disk = guest_dir / "kvd-demo.qcow2"
    imports = [["import", image, str(disk)] for image in sorted(_images(RUNS))]
    for image, kernel, initrd in sorted(_kernel_images(RUNS), key=str):
        command = ["import", image]
        if kernel is not None:
            command += ["--kernel", str(guest_dir / "vmlinuz"), "--kernel-path", kernel]
        if initrd is not None:
            command += ["--initrd", str(guest_dir / "initrd.img"), "--initrd-path", initrd]
        imports.append(command)
    for command in imports:
        subprocess.run(
            [KVD, "image", "--store", str(cluster.image_store), *command],
            check=True,
            capture_output=True,
            timeout=60,
        )
    try:
        cluster.up()
        yield E2E(cluster)
    finally:
        cluster.down()
        leftovers = cluster.leftovers()
        if os.environ.get("KVD_KEEP_TEST_DIRS") is None:
            shutil.rmtree(cluster.data_dir, ignore_errors=True)
    assert leftovers == []


def test_what_runs_has_its_storage_made_first() -> None:
    """A runnable example that names a claim or a host disk has a prerequisite that makes it
    (the API test checks the table; this checks the e2e test can keep its word)."""
    needing = {r.file for r in RUNS if prerequisites.needs_storage(r)}
    assert needing == set(prerequisites.PREREQUISITES)


@pytest.mark.parametrize("row", RUN_VMIS, ids=lambda r: r.file)
def test_a_runnable_example_runs_and_deletes(
    e2e: E2E, row: Row, guest_dir: Path, tmp_path: Path
) -> None:
    prerequisite = prerequisites.PREREQUISITES.get(row.file, prerequisites.nothing)
    with prerequisite(e2e, row, tmp_path, guest_dir) as prepared:
        try:
            _run_and_delete(e2e, row, prepared)
        finally:  # nothing may hold the storage the prerequisite removes next
            e2e.kubectl("delete", "-f", str(prepared.manifest), "--ignore-not-found", check=False)


def _run_and_delete(e2e: E2E, row: Row, prepared: prerequisites.Prepared) -> None:
    (document,) = row.documents()
    name = document["metadata"]["name"]
    applied = e2e.kubectl("apply", "-f", str(prepared.manifest))
    assert f"{name} created" in applied.stdout
    for warning in deprecations.warnings(document):
        assert f"Warning: {warning}" in applied.stderr

    # Running: libvirt and QEMU took the domain kvd made of the example (chassis, clock and
    # SMM included). That the demo guest then boots is test_vmi's to show.
    vmi = e2e.wait_vmi(name, "Running")
    assert vmi["spec"]["domain"]["machine"]["type"] == "q35"  # "" or unset: the default
    # The pod network's interface shows the launcher pod's IP, with the bridge binding (the
    # guest has it) and with masquerade (the guest is behind it), as KubeVirt shows it.
    [pod] = e2e.pods_of(vmi)
    spec_interfaces = [i["name"] for i in vmi["spec"]["domain"]["devices"].get("interfaces", [])]
    shown = [(i["name"], i.get("ipAddress")) for i in vmi["status"].get("interfaces", [])]
    assert shown == [(n, pod["status"]["podIP"]) for n in spec_interfaces]
    assert "registryDisk" not in str(vmi["spec"]) and "volumeName" not in str(vmi["spec"])
    [pod] = e2e.pods_of(vmi)
    _check_firmware(e2e, vmi, pod)
    console = prepared.console or CONSOLE.get(row.file)
    if console is not None:
        _wait_console(e2e, pod, console)

    e2e.kubectl("delete", "-f", str(prepared.manifest))  # waits for the controller's finalizer
    assert e2e.vmi(name) is None
    wait_for(
        f"{name}'s launcher pod gone",
        lambda: e2e.kubectl("get", "pods", "-o", "name").stdout.strip() == "",
        timeout=30,
    )
    run_dir = e2e.launcher_dir / pod["metadata"]["uid"]
    wait_for(f"the launcher's {run_dir} removed", lambda: not run_dir.exists(), timeout=30)


def _wait_console(e2e: E2E, pod: Json, pattern: str) -> None:
    """Until a line of the guest's console (kubectl logs -c guest-console-log) matches."""
    seen = ""

    def shown() -> bool:
        nonlocal seen
        name = pod["metadata"]["name"]
        seen = e2e.kubectl("logs", name, "-c", "guest-console-log", check=False).stdout
        return re.search(pattern, seen, re.MULTILINE) is not None

    wait_for(
        f"{pattern!r} on the console",
        shown,
        timeout=BOOT,
        diagnose=lambda: f"the console so far:\n{seen[-3000:]}",
    )


def _check_firmware(e2e: E2E, vmi: Json, pod: Json) -> None:
    """The domain libvirt runs has the firmware the spec asks for (read with virsh in the
    launcher pod, as a user debugging it would)."""
    meta = vmi["metadata"]
    domain = f"{meta['namespace']}_{meta['name']}"
    xml = e2e.kubectl(
        "exec", pod["metadata"]["name"], "-c", "compute", "--", "virsh", "dumpxml", domain
    ).stdout
    root = ET.fromstring(xml)
    firmware = vmi["spec"]["domain"].get("firmware") or {}
    efi = (firmware.get("bootloader") or {}).get("efi")
    loader, nvram = root.find("os/loader"), root.find("os/nvram")
    if efi is None:
        assert loader is None, xml
    else:
        secure = efi.get("secureBoot") is True
        assert loader is not None and nvram is not None, xml
        assert loader.get("secure") == ("yes" if secure else "no"), xml
        assert (root.find("features/smm") is not None) is secure, xml
        run_dir = f"/var/run/kvd/launchers/{pod['metadata']['uid']}/"  # the pod's launcher's
        assert nvram.text and nvram.text.startswith(run_dir), xml
    kernel_boot = firmware.get("kernelBoot")
    if kernel_boot is not None:
        assert root.findtext("os/cmdline") == kernel_boot.get("kernelArgs"), xml
        assert (root.findtext("os/kernel") or "").endswith(kernel_boot["container"]["kernelPath"])
    else:
        assert root.find("os/kernel") is None, xml


# What a VM example's guest prints once booted: its own cloud-init user-data's output.
VM_CONSOLE = {"kubevirt-examples/vm-cirros.yaml": r"^printed from cloud-init userdata\r?$"}


@pytest.mark.parametrize("row", RUN_VMS, ids=lambda r: r.file)
def test_a_runnable_vm_example_starts_and_stops(e2e: E2E, row: Row) -> None:
    """Applied Stopped; `running: true` (or `runStrategy: Always`): Starting, Running (and the
    guest boots); `running: false` (or Halted): Stopping, Stopped, no VMI left."""
    (document,) = row.documents()
    name = document["metadata"]["name"]
    applied = e2e.kubectl("apply", "-f", str(row.path))
    assert f"virtualmachine.kubevirt.io/{name} created" in applied.stdout
    for warning in deprecations.warnings(document):
        assert f"Warning: {warning}" in applied.stderr
    if "running" in document["spec"]:
        start, stop = '{"spec":{"running":true}}', '{"spec":{"running":false}}'
    else:
        start, stop = '{"spec":{"runStrategy":"Always"}}', '{"spec":{"runStrategy":"Halted"}}'
    watch = vms.StatusWatch(e2e, name)
    try:
        vms.wait_shows(e2e, name, "Stopped", timeout=30)
        assert e2e.vmi(name) is None
        header, shown = vms.table(e2e, "vm", name)
        assert header == ["NAME", "AGE", "STATUS", "READY"]
        assert (shown[0], shown[2:]) == (name, ["Stopped", "False"])

        e2e.kubectl("patch", "vm", name, "--type=merge", "-p", start)
        vmi = vms.running_vmi(e2e, name)
        wait_for(
            f"kubectl get vm {name}: Running, ready",
            lambda: vms.table(e2e, "vm", name)[1][2:] == ["Running", "True"],
            timeout=60,
        )
        console = VM_CONSOLE.get(row.file)
        if console is not None:
            [pod] = e2e.pods_of(vmi)
            _wait_console(e2e, pod, console)

        e2e.kubectl("patch", "vm", name, "--type=merge", "-p", stop)
        vms.wait_stopped(e2e, name)
        wait_for(f"{name}'s launcher pod gone", lambda: e2e.pods_of(vmi) == [], timeout=30)
        wait_for(
            "the watch to show every state",
            lambda: watch.saw("Stopped", "Starting", "Running", "Stopping", "Stopped"),
            timeout=10,
            diagnose=watch.shown,
        )
    finally:
        watch.close()
    e2e.kubectl("delete", "-f", str(row.path))  # waits for the controller's finalizer
    assert e2e.kubectl("get", "vms,vmis,pods", "-o", "name").stdout.strip() == ""


@pytest.mark.parametrize("row", RUN_SETS, ids=lambda r: r.file)
def test_a_runnable_replica_set_example_runs_and_scales(e2e: E2E, row: Row) -> None:
    (document,) = row.documents()
    name = document["metadata"]["name"]
    selector = ",".join(f"{k}={v}" for k, v in document["spec"]["selector"]["matchLabels"].items())

    def alive() -> list[Json]:
        items: list[Json] = json.loads(
            e2e.kubectl("get", "vmis", "-l", selector, "-o", "json").stdout
        )["items"]
        living = [v for v in items if not v["metadata"].get("deletionTimestamp")]
        return sorted(living, key=lambda v: v["metadata"]["creationTimestamp"])

    def uids(vmis: list[Json]) -> list[str]:
        return [v["metadata"]["uid"] for v in vmis]

    def counted(n: int) -> list[Json]:
        def exactly() -> list[Json] | None:
            found = alive()
            return found if len(found) == n else None

        found: list[Json] = wait_for(f"{n} VMIs of {name}", exactly, timeout=60)
        return found

    applied = e2e.kubectl("apply", "-f", str(row.path))
    assert f"virtualmachineinstancereplicaset.kubevirt.io/{name} created" in applied.stdout
    replicas = document["spec"]["replicas"]
    wait_for(
        f"{replicas} Running",
        lambda: [(v.get("status") or {}).get("phase") for v in alive()] == ["Running"] * replicas,
        timeout=180,
    )
    wait_for(
        f"kubectl get vmirs {name}: {replicas} ready",
        lambda: vms.table(e2e, "vmirs", name)[1][1:4] == [str(replicas)] * 3,
        timeout=60,
    )
    assert vms.table(e2e, "vmirs", name)[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    oldest = alive()[0]

    e2e.kubectl("scale", "vmirs", name, "--replicas", "1")  # the newest go first
    assert uids(counted(1)) == uids([oldest])
    e2e.kubectl("scale", "vmirs", name, "--replicas", "4")
    scaled = counted(4)
    assert uids(scaled)[0] == oldest["metadata"]["uid"]  # 3 created
    gone = scaled[-1]
    e2e.kubectl("delete", "vmi", gone["metadata"]["name"])
    replaced = counted(4)
    assert gone["metadata"]["uid"] not in uids(replaced)

    e2e.kubectl("patch", "vmirs", name, "--type=merge", "-p", '{"spec":{"paused":true}}')
    wait_for(
        "ReplicaPaused",
        lambda: "ReplicaPaused" in e2e.kubectl("get", "vmirs", name, "-o", "yaml").stdout,
        timeout=30,
    )
    e2e.kubectl("delete", "vmi", replaced[-1]["metadata"]["name"])
    holds_for("a paused set replaces nothing", lambda: len(alive()) == 3, 3.0)

    e2e.kubectl("delete", "-f", str(row.path))  # its VMIs go with it (owner references)
    wait_for(
        "its VMIs and pods gone",
        lambda: e2e.kubectl("get", "vmis,pods", "-o", "name").stdout.strip() == "",
        timeout=60,
    )


@pytest.mark.parametrize("row", ACCEPTED, ids=lambda r: r.file)
def test_an_accepted_vm_or_replica_set_is_stored(e2e: E2E, row: Row) -> None:
    applied = e2e.kubectl("apply", "-f", str(row.path))
    for document in row.documents():
        kind, name = document["kind"], document["metadata"]["name"]
        assert f"{kind.lower()}.kubevirt.io/{name} created" in applied.stdout
        for warning in deprecations.warnings(document):
            assert f"Warning: {warning}" in applied.stderr
        stored = e2e.kubectl("get", kind, name, "-o", "jsonpath={.metadata.uid}").stdout
        assert stored
    e2e.kubectl("delete", "-f", str(row.path))
    # what the VM made goes after it: a dataVolumeTemplate's DataVolume, and its importer pod
    wait_for(
        "nothing left of it",
        lambda: e2e.kubectl("get", "vmis,pods,dv,pvc", "-o", "name").stdout.strip() == "",
        timeout=60,
        diagnose=lambda: _leftovers(e2e),
    )


def _leftovers(e2e: E2E) -> str:
    """What is still there, with who owns it and whether it is being deleted."""
    columns = (
        "custom-columns=KIND:.kind,NAME:.metadata.name,DELETING:.metadata.deletionTimestamp,"
        "FINALIZERS:.metadata.finalizers,OWNER:.metadata.ownerReferences[*].name,"
        "PHASE:.status.phase,CREATED:.metadata.creationTimestamp"
    )
    shown = e2e.kubectl("get", "vm,vmis,pods,dv,pvc", "-o", columns, check=False)
    events = e2e.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False)
    return f"{shown.stdout}{shown.stderr}\nevents:\n{events.stdout[-3000:]}"


def test_a_kernel_the_image_lacks_is_a_condition_naming_the_field(e2e: E2E) -> None:
    """vmi-kernel-boot.yaml with a kernelPath its image does not have: the launcher refuses
    the domain, the VMI says why, and deleting it leaves nothing behind."""
    [row] = [r for r in RUNS if r.file == "kubevirt-examples/vmi-kernel-boot.yaml"]
    (document,) = row.documents()
    document["metadata"]["name"] = "no-kernel"
    container = document["spec"]["domain"]["firmware"]["kernelBoot"]["container"]
    container["kernelPath"] = "/boot/vmlinuz-nothere"
    e2e.apply(yaml.safe_dump(document))
    wanted = (
        "spec.domain.firmware.kernelBoot.container.kernelPath: /boot/vmlinuz-nothere is not in "
        f'image "{container["image"]}"'
    )

    def synchronized() -> Json | None:
        conditions = ((e2e.vmi("no-kernel") or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Synchronized"), None)

    wait_for("a Synchronized condition", lambda: synchronized() is not None, timeout=120)
    condition = synchronized()
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
    assert wanted in condition["message"]
    vmi = e2e.vmi("no-kernel")
    assert vmi is not None and vmi["status"]["phase"] != "Running"
    events = e2e.kubectl("get", "events", "--field-selector", "involvedObject.name=no-kernel")
    assert "/boot/vmlinuz-nothere is not in" in events.stdout

    e2e.kubectl("delete", "vmi", "no-kernel")
    assert e2e.vmi("no-kernel") is None
    wait_for("the launcher pod gone", lambda: e2e.pods_of(vmi) == [], timeout=30)
