"""The warnings KubeVirt's admission gives for objects it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kvd.api import deprecations, kinds

MANIFESTS = Path(__file__).parent / "manifests"


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param("vm-stopped.yaml", [deprecations.RUNNING], id="vm-with-running"),
        pytest.param("vm-runstrategy.yaml", [], id="vm-with-run-strategy"),
        pytest.param("vmi-containerdisk.yaml", [], id="vmi"),
    ],
)
def test_warnings(manifest: str, expected: list[str]) -> None:
    data = yaml.safe_load((MANIFESTS / manifest).read_text())
    kinds.load(data)  # accepted: a warning is not a refusal
    assert deprecations.warnings(data) == expected
