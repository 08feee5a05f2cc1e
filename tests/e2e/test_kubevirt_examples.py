"""KubeVirt's examples on a local cluster, with `kubectl apply -f` of the files themselves.

The rows docs/compatibility.md marks **runs** are VMIs: each is applied, must reach Running (its
container disk images are imported into a private image store as the demo guest, its kernel
boot image as the demo guest's kernel and initrd at the paths the example names, and the claims
or host disk it presumes exist are made first, as a user would: see `prerequisites`), and is
deleted without a trace, one at a time. An EFI example's domain must have the OVMF build its
spec asks for (Secure Boot: the secure loader and SMM), and where the demo guest boots with
the example's own settings, its console must show which firmware started it (and the kernel
boot example, pointed at a kernel its image lacks, must say so on the VMI). The
VirtualMachines and replica sets marked **validates** are applied to check the API server
accepts them (kvd has no VM or VMIRS controller yet) and deleted.
"""

from __future__ import annotations

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

from kvd.api import deprecations, kinds
from kvd.api import vmi as vmitypes
from tests.api import compatibility
from tests.api.compatibility import Row
from tests.e2e import prerequisites
from tests.e2e.conftest import E2E, Json
from tests.local.node.conftest import KVD, new_cluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ROWS = compatibility.rows()
RUNS = [r for r in ROWS if r.outcome == "runs"]
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


def _vmis(rows: list[Row]) -> list[vmitypes.VirtualMachineInstance]:
    found = []
    for row in rows:
        for document in row.documents():
            obj = kinds.load(document)
            assert isinstance(obj, vmitypes.VirtualMachineInstance)
            found.append(obj)
    return found


def _images(rows: list[Row]) -> set[str]:
    """The container disk images of these VMIs, as kvd reads them (registryDisk included)."""
    return {v.container_disk.image for o in _vmis(rows) for v in o.spec.volumes if v.container_disk}


def _kernel_images(rows: list[Row]) -> set[tuple[str, str | None, str | None]]:
    """(image, kernelPath, initrdPath) of the kernel-boot containers of these VMIs."""
    found = set()
    for obj in _vmis(rows):
        kernel_boot = obj.spec.domain.firmware.kernel_boot if obj.spec.domain.firmware else None
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


@pytest.mark.parametrize("row", RUNS, ids=lambda r: r.file)
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
    assert e2e.kubectl("get", "vmis,pods", "-o", "name").stdout.strip() == ""


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
