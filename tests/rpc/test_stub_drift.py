"""The committed stubs in kvd/rpc/, and Kubernetes' messages in kvd/local/apiserver/protobuf/gen/,
are exactly what scripts/gen-proto makes of proto/.

The check regenerates into a temporary directory and compares trees; the other tests here show
that the comparison notices a changed or removed proto, so the check is not vacuous.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.drift import diff_trees

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATOR = REPO_ROOT / "scripts" / "gen-proto"
PROTO_DIR = REPO_ROOT / "proto"
STUBS = Path("kvd", "rpc")
K8S_MESSAGES = Path("kvd", "local", "apiserver", "protobuf", "gen")


def generate(out: Path, *, proto_dir: Path = PROTO_DIR) -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--proto-dir", str(proto_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"gen-proto failed:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("tree", [STUBS, K8S_MESSAGES], ids=["kvd-rpc", "k8s-messages"])
def test_committed_stubs_match_the_protos(tmp_path: Path, tree: Path) -> None:
    generate(tmp_path)

    differences = diff_trees(tmp_path / tree, REPO_ROOT / tree)

    assert not differences, (
        f"{tree}/ does not match what proto/ generates; run `make proto` and commit the result.\n"
        f"Differing files (expected = freshly generated, actual = {tree}/):\n  "
        + "\n  ".join(differences)
    )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    generate(tmp_path / "first")
    generate(tmp_path / "second")

    for tree in (STUBS, K8S_MESSAGES):
        assert diff_trees(tmp_path / "first" / tree, tmp_path / "second" / tree) == []


def test_drift_check_reports_a_changed_kubernetes_proto_and_json_fields(tmp_path: Path) -> None:
    generate(tmp_path / "before")
    changed_protos = tmp_path / "proto"
    shutil.copytree(PROTO_DIR, changed_protos)
    lease_proto = changed_protos / "k8s/k8s.io/api/coordination/v1/generated.proto"
    original = lease_proto.read_text()
    anchor = "message LeaseSpec {"
    assert anchor in original, "the test's anchor vanished from coordination/v1"
    lease_proto.write_text(original.replace(anchor, anchor + "\n  optional string probe = 99;"))
    fields = changed_protos / "k8s/json-fields.json"
    fields.write_text(fields.read_text().replace('"inline": [', '"inline": [\n  "probe",', 1))

    generate(tmp_path / "after", proto_dir=changed_protos)

    assert diff_trees(tmp_path / "after" / K8S_MESSAGES, tmp_path / "before" / K8S_MESSAGES) == [
        "json_fields.py: contents differ",
        "k8s/io/api/coordination/v1/generated_pb2.py: contents differ",
    ]


def test_drift_check_reports_a_proto_changed_without_regenerating(tmp_path: Path) -> None:
    generate(tmp_path / "before")
    changed_protos = tmp_path / "proto"
    shutil.copytree(PROTO_DIR, changed_protos)
    launcher_proto = changed_protos / "kvd/rpc/launcher/v1/launcher.proto"
    original = launcher_proto.read_text()
    empty_request = "message GetInfoRequest {}"
    assert empty_request in original, "the test's anchor vanished from launcher.proto"
    with_field = "message GetInfoRequest {\n  // Added after generation.\n  string probe = 1;\n}"
    launcher_proto.write_text(original.replace(empty_request, with_field))

    generate(tmp_path / "after", proto_dir=changed_protos)

    assert diff_trees(tmp_path / "after" / STUBS, tmp_path / "before" / STUBS) == [
        "launcher/v1/launcher_pb2.py: contents differ",
        "launcher/v1/launcher_pb2.pyi: contents differ",
    ]


def test_generator_removes_the_stubs_of_a_deleted_proto(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(out)
    full_tree = tmp_path / "full"
    shutil.copytree(out / STUBS, full_tree)
    fewer_protos = tmp_path / "proto"
    shutil.copytree(PROTO_DIR, fewer_protos)
    shutil.rmtree(fewer_protos / "kvd/rpc/handler")

    generate(out, proto_dir=fewer_protos)

    assert diff_trees(full_tree, out / STUBS) == [
        "handler/__init__.py: only in expected",
        "handler/v1/__init__.py: only in expected",
        "handler/v1/handler_pb2.py: only in expected",
        "handler/v1/handler_pb2.pyi: only in expected",
        "handler/v1/handler_pb2_grpc.py: only in expected",
    ]
    assert not (out / STUBS / "handler").exists()


def test_diff_trees_reports_missing_extra_and_changed_files(tmp_path: Path) -> None:
    expected, actual = tmp_path / "expected", tmp_path / "actual"
    for root in (expected, actual):
        (root / "pkg" / "__pycache__").mkdir(parents=True)
        (root / "pkg" / "same.py").write_text("same\n")
    (expected / "pkg" / "changed.py").write_text("new\n")
    (actual / "pkg" / "changed.py").write_text("old\n")
    (expected / "pkg" / "added.py").write_text("")
    (actual / "pkg" / "stale.py").write_text("")
    (actual / "pkg" / "__pycache__" / "same.cpython-311.pyc").write_bytes(b"\0")

    assert diff_trees(expected, actual) == [
        "pkg/added.py: only in expected",
        "pkg/changed.py: contents differ",
        "pkg/stale.py: only in actual",
    ]
