"""`kvd validate` as a user runs it: the installed console script, files and stdin."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.api.conftest import MANIFESTS

pytestmark = pytest.mark.integration  # runs the installed kvd and kvdctl programs

KVD = shutil.which("kvd", path=str(Path(sys.executable).parent)) or "kvd"


def _kvd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KVD, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_valid_documents_print_defaulted_yaml(tmp_path: Path) -> None:
    names = ["vmi-volume-without-disk.yaml", "vm-runstrategy.yaml", "vmirs.yaml"]
    combined = tmp_path / "all.yaml"
    combined.write_text("\n---\n".join((MANIFESTS / n).read_text() for n in names))
    result = _kvd("validate", "-f", str(combined))
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == [
        "VirtualMachineInstance",
        "VirtualMachine",
        "VirtualMachineInstanceReplicaSet",
    ]
    vmi = docs[0]
    assert vmi["spec"]["domain"]["devices"]["disks"] == [
        {"name": "containerdisk", "disk": {"bus": "virtio"}}
    ]
    assert vmi["spec"]["terminationGracePeriodSeconds"] == 30
    assert vmi["spec"]["networks"] == [{"name": "default", "pod": {}}]


def test_stdin_and_errors_with_field_paths() -> None:
    bad = (
        (MANIFESTS / "vmi-containerdisk.yaml")
        .read_text()
        .replace("name: containerdisk\n          disk:", "name: rootdisk\n          disk:")
    )
    good = (MANIFESTS / "vmirs.yaml").read_text()
    result = _kvd("validate", "-f", "-", stdin=bad + "\n---\n" + good)
    assert result.returncode == 1
    assert "VirtualMachineInstance 'testvmi-nocloud' (document 1) is invalid" in result.stderr
    assert 'spec.domain.devices.disks[0].name: no volume named "rootdisk"' in result.stderr
    # the valid document is still printed
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout)] == [
        "VirtualMachineInstanceReplicaSet"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("a: [", "not valid YAML", id="bad-yaml"),
        pytest.param("", "no objects found", id="empty"),
        pytest.param(
            "kind: Pod\napiVersion: v1\n", 'kind: Unsupported value: "Pod"', id="other-kind"
        ),
    ],
)
def test_bad_input(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(content)
    result = _kvd("validate", "-f", str(path))
    assert result.returncode == 1
    assert message in result.stderr


def test_missing_file() -> None:
    result = _kvd("validate", "-f", "/nonexistent/vmi.yaml")
    assert result.returncode == 1
    assert "cannot read /nonexistent/vmi.yaml" in result.stderr


def test_examples_are_valid() -> None:
    examples = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
    assert examples
    for example in examples:
        result = _kvd("validate", "-f", str(example))
        assert result.returncode == 0, f"{example}: {result.stderr}"


def test_deprecated_fields_are_accepted_with_warnings_on_stderr() -> None:
    result = _kvd("validate", "-f", str(MANIFESTS / "seed" / "vmi-registrydisk.yaml"))
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert warnings[0] == (
        "Warning: VirtualMachineInstance 'vmi-registrydisk' (document 1): "
        "spec.volumes[0].registryDisk: deprecated; use containerDisk instead"
    )
    assert len(warnings) == 3 and all(w.startswith("Warning: ") for w in warnings)
    (vmi,) = yaml.safe_load_all(result.stdout)
    assert vmi["spec"]["volumes"][0]["containerDisk"]["image"].endswith("registry-disk-demo:devel")
    assert vmi["spec"]["domain"]["machine"] == {"type": "q35"}
