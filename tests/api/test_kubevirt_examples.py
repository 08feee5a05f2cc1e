"""KubeVirt's examples: each is accepted, or refused naming a KubeVirt feature kvd does not
have yet, exactly as docs/compatibility.md says (its table is read here, not copied)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from kvd.api import kinds, unsupported
from kvd.api import vmi as vmitypes
from kvd.api.errors import ValidationError
from tests.api import compatibility
from tests.api.compatibility import DIRS, MANIFESTS, Row, is_kubevirt

ROWS = compatibility.rows()


def _errors(row: Row) -> list[str]:
    """Every error of the manifest's KubeVirt documents; [] when they all load."""
    errors = []
    for document in row.documents():
        if not is_kubevirt(document):
            continue
        try:
            kinds.load(document)
        except ValidationError as exc:
            errors += [str(e) for e in exc.errors]
    return errors


def test_every_manifest_has_one_row() -> None:
    on_disk = sorted(f"{d}/{p.name}" for d in DIRS for p in (MANIFESTS / d).glob("*.yaml"))
    listed = [r.file for r in ROWS]
    assert [f for f, n in Counter(listed).items() if n > 1] == []
    assert sorted(listed) == on_disk


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.file)
def test_kinds_are_the_manifests(row: Row) -> None:
    assert row.kinds == tuple(d.get("kind") for d in row.documents())


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.file)
def test_what_kvd_does_is_what_the_table_says(row: Row) -> None:
    kubevirt = [d for d in row.documents() if is_kubevirt(d)]
    errors = _errors(row)
    if row.outcome == "not kubevirt.io":
        assert kubevirt == []
        for document in row.documents():
            with pytest.raises(ValidationError, match='kind: Unsupported value: "'):
                kinds.load(document)
        return
    assert kubevirt, "a row about kvd needs a kubevirt.io object"
    if row.outcome in ("runs", "validates"):
        assert errors == []
        return
    assert errors, f"{row.file} loads, but the table says {row.outcome}"
    missing = [q for q in row.quoted if not any(q in e for e in errors)]
    assert missing == [], f"not in the errors: {missing}; errors: {errors}"
    if row.outcome == "refused":
        assert row.quoted, "a refusal row names the features"
        # every error names a feature kvd does not have yet, not just a bad value
        vague = [e for e in errors if "not supported by kvd yet (" not in e]
        assert vague == [], vague


@pytest.mark.parametrize("row", [r for r in ROWS if r.outcome == "runs"], ids=lambda r: r.file)
def test_what_runs_needs_only_what_a_local_cluster_has(row: Row) -> None:
    """The e2e test runs these with their container disks and kernel boot images mapped to the
    demo guest, and makes the claims and host disks they name (tests/e2e/prerequisites.py):
    the demo guest on a hostPath or loop-device PersistentVolume, a host disk under its tmp
    dir. So each runs from one VMI (or one VM's or replica set's template), and boots from
    one of those, or has a disk it can make."""
    (document,) = row.documents()
    spec = compatibility.vmi_spec(document)
    assert isinstance(spec, vmitypes.VirtualMachineInstanceSpec)
    volumes = spec.volumes
    firmware = spec.domain.firmware
    kernel_boot = firmware.kernel_boot if firmware else None
    booted = [v.name for v in volumes if v.container_disk or v.persistent_volume_claim]
    made = [v.name for v in volumes if v.host_disk]
    assert booted or made or (kernel_boot and kernel_boot.container), "nothing to run"
    stored = [v.name for v in volumes if v.persistent_volume_claim or v.host_disk]
    assert len(stored) <= 1, "the e2e test makes one claim or host disk per example"


def test_every_refusal_feature_is_one_kvd_names() -> None:
    """The doc's feature names are the code's, not paraphrases that happen to match."""
    named = [*unsupported.FIELDS.values(), *unsupported.KINDS.values()]
    named += unsupported.ANNOTATIONS.values()
    for row in ROWS:
        if row.outcome == "refused":
            for feature in row.quoted:
                assert any(feature in n for n in named), f"{row.file}: {feature!r}"


def test_the_totals_add_up() -> None:
    text = compatibility.DOC.read_text()
    counts = Counter(r.outcome for r in ROWS if r.file.startswith("kubevirt-examples/"))
    words = {"run": "runs", "validate": "validates", "are refused by feature": "refused"}
    sentence = re.search(r"Totals: of the (\d+) KubeVirt examples, (.*?)\.\n\n", text, re.S)
    assert sentence, "no totals sentence"
    assert int(sentence.group(1)) == sum(counts.values())
    said = " ".join(sentence.group(2).split())
    for phrase, outcome in words.items():
        assert f"{counts[outcome]} {phrase}" in said, (phrase, counts)
    assert f"{counts['invalid']} is invalid" in said
    assert f"{counts['not kubevirt.io']} are not kubevirt.io" in said
