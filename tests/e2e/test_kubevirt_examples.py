"""KubeVirt's examples on a local cluster, with `kubectl apply -f` of the files themselves.

The rows docs/compatibility.md marks **runs** are VMIs: each is applied, must reach Running (its
container disk images are imported into a private image store as the demo guest), and is
deleted without a trace, one at a time. The VirtualMachines and replica
sets marked **validates** are applied to check the API server accepts them (kvd has no VM or
VMIRS controller yet) and deleted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kvd.api import deprecations, kinds
from kvd.api import vmi as vmitypes
from tests.api import compatibility
from tests.api.compatibility import Row
from tests.e2e.conftest import E2E
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


def _images(rows: list[Row]) -> set[str]:
    """The container disk images of these VMIs, as kvd reads them (registryDisk included)."""
    found = set()
    for row in rows:
        for document in row.documents():
            obj = kinds.load(document)
            assert isinstance(obj, vmitypes.VirtualMachineInstance)
            found |= {v.container_disk.image for v in obj.spec.volumes if v.container_disk}
    return found


@pytest.fixture(scope="module")
def e2e(guest_dir: Path) -> Iterator[E2E]:
    """A local cluster whose image store holds the examples' images, all the demo guest."""
    cluster = new_cluster()
    cluster = replace(cluster, image_store=cluster.data_dir / "images")
    disk = guest_dir / "kvd-demo.qcow2"
    for image in sorted(_images(RUNS)):
        subprocess.run(
            [KVD, "image", "--store", str(cluster.image_store), "import", image, str(disk)],
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


@pytest.mark.parametrize("row", RUNS, ids=lambda r: r.file)
def test_a_runnable_example_runs_and_deletes(e2e: E2E, row: Row) -> None:
    (document,) = row.documents()
    name = document["metadata"]["name"]
    applied = e2e.kubectl("apply", "-f", str(row.path))
    assert f"{name} created" in applied.stdout
    for warning in deprecations.warnings(document):
        assert f"Warning: {warning}" in applied.stderr

    # Running: libvirt and QEMU took the domain kvd made of the example (chassis, clock and
    # SMM included). That the demo guest then boots is test_vmi's to show.
    vmi = e2e.wait_vmi(name, "Running")
    assert vmi["spec"]["domain"]["machine"]["type"] == "q35"  # "" or unset: the default
    assert "registryDisk" not in str(vmi["spec"]) and "volumeName" not in str(vmi["spec"])

    e2e.kubectl("delete", "-f", str(row.path))  # waits for the controller's finalizer
    assert e2e.vmi(name) is None
    wait_for(
        f"{name}'s launcher pod gone",
        lambda: e2e.kubectl("get", "pods", "-o", "name").stdout.strip() == "",
        timeout=30,
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
    assert e2e.kubectl("get", "vmis,pods", "-o", "name").stdout.strip() == ""
