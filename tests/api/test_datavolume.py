"""CDI's DataVolume: the committed CRD carries CDI's names and columns, and `load` accepts CDI's
manifests and names what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kvd.api import datavolume
from kvd.api.errors import ValidationError

COMMITTED = (
    Path(__file__).parents[2] / "charts" / "kvd" / "crds" / "datavolumes.cdi.kubevirt.io.yaml"
)


def _dv(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "d"},
        "spec": spec,
    }


def test_crd_has_cdi_names_and_columns() -> None:
    crd = yaml.safe_load(COMMITTED.read_text())
    assert crd["metadata"]["name"] == "datavolumes.cdi.kubevirt.io"
    assert "dv" in crd["spec"]["names"]["shortNames"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1beta1" and version["subresources"] == {"status": {}}
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Phase", ".status.phase"),
        ("Progress", ".status.progress"),
        ("Restarts", ".status.restartCount"),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_loads_the_kubevirt_example_shape() -> None:
    dv = datavolume.load(
        _dv(
            {
                "source": {"http": {"url": "http://x/a.qcow2", "secretRef": "s"}},
                "storage": {"resources": {"requests": {"storage": "64Mi"}}},
            }
        )
    )
    assert dv.spec.source is not None and dv.spec.source.http is not None
    assert datavolume.size_of(dv) == "64Mi"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({"source": {"blank": {}}}, "exactly one of storage and pvc", id="no-storage"),
        pytest.param(
            {"source": {"http": {"url": "u"}, "blank": {}}, "storage": {}},
            "source",
            id="two-sources",
        ),
        pytest.param(
            {"source": {"registry": {"url": "quay.io/x"}}, "storage": {}},
            'must start with "docker://"',
            id="registry-url",
        ),
        pytest.param(
            {"source": {"blank": {}}, "storage": {}, "preallocation": True},
            "spec.preallocation: field not supported by kvd yet (preallocation)",
            id="preallocation",
        ),
        pytest.param(
            {"source": {"blank": {}}, "pvc": {"accessModes": ["ReadWriteOnce"]}},
            "spec.pvc.resources.requests.storage: is required",
            id="pvc-without-size",
        ),
        pytest.param(
            {"source": {"ftp": {}}, "storage": {}}, "spec.source.ftp", id="unknown-source"
        ),
    ],
)
def test_refuses_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        datavolume.load(_dv(spec))
    assert message in str(caught.value)
