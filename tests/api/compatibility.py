"""The table of KubeVirt's examples in docs/compatibility.md, parsed: the one place both the
API test and the e2e test read what kvd does with each manifest, so the doc cannot drift."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from kvd.api import kinds

REPO: Final = Path(__file__).parents[2]
DOC: Final = REPO / "docs" / "compatibility.md"
MANIFESTS: Final = Path(__file__).parent / "manifests"
DIRS: Final = ("kubevirt-examples", "seed")
OUTCOMES: Final = ("runs", "validates", "refused", "invalid", "not kubevirt.io")
# The API groups of KubeVirt and its CDI: objects of these are kvd's to serve or refuse.
KUBEVIRT_GROUPS: Final = frozenset(
    {
        "kubevirt.io",
        "pool.kubevirt.io",
        "instancetype.kubevirt.io",
        "flavor.kubevirt.io",
        "migrations.kubevirt.io",
        "snapshot.kubevirt.io",
        "export.kubevirt.io",
        "clone.kubevirt.io",
        "cdi.kubevirt.io",
    }
)


@dataclass(frozen=True)
class Row:
    file: str  # relative to tests/api/manifests, e.g. kubevirt-examples/vmi-ephemeral.yaml
    kinds: tuple[str, ...]
    outcome: str
    why: str

    @property
    def path(self) -> Path:
        return MANIFESTS / self.file

    @property
    def quoted(self) -> tuple[str, ...]:
        """The backquoted parts of `why`: features (refused) or the error (invalid)."""
        return tuple(re.findall(r"`([^`]+)`", self.why))

    def documents(self) -> list[Any]:
        return [d for d in yaml.safe_load_all(self.path.read_text()) if d is not None]


def is_kubevirt(document: Any) -> bool:
    api_version = document.get("apiVersion", "") if isinstance(document, dict) else ""
    group = api_version.rpartition("/")[0] if "/" in str(api_version) else ""
    return group in KUBEVIRT_GROUPS


def rows() -> list[Row]:
    text = DOC.read_text()
    start, end = text.index("<!-- examples-table -->"), text.index("<!-- /examples-table -->")
    found = []
    for line in text[start:end].splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a row needs 4 cells: {line}"
        file, kinds, outcome, why = cells
        assert outcome in OUTCOMES, f"unknown outcome {outcome!r}: {line}"
        found.append(
            Row(
                file=file.strip("`"),
                kinds=tuple(k.strip() for k in kinds.split(",")),
                outcome=outcome,
                why=why,
            )
        )
    return found


def vmi_spec(document: Any) -> Any:
    """The spec of the VMI(s) a runnable document makes: a VMI's own, a VirtualMachine's or a
    replica set's template's (kvd.api's `VirtualMachineInstanceSpec`, defaulted)."""
    obj = kinds.load(document)
    spec = obj.spec
    return spec.template.spec if hasattr(spec, "template") else spec
