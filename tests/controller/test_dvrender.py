"""A DataVolume's claim and importer pod, and what a VM's DataVolumes mean for it: pure."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.api import datavolume as dvapi
from kvd.controller import dvrender, vmvolumes

Json = dict[str, Any]


def _dv(spec: Json) -> Json:
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "d", "namespace": "ns", "uid": "dv-1"},
        "spec": spec,
    }


HTTP = {
    "source": {"http": {"url": "https://h/x.qcow2", "secretRef": "s", "certConfigMap": "c"}},
    "storage": {"resources": {"requests": {"storage": "1Gi"}}},
}


def test_storage_gets_cdis_defaults_and_annotations() -> None:
    raw = _dv(HTTP)
    claim = dvrender.claim(dvapi.load(raw), raw)
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": "1Gi"}},
    }
    annotations = claim["metadata"]["annotations"]
    assert annotations[dvapi.ANN_ENDPOINT] == "https://h/x.qcow2"
    assert annotations[dvapi.ANN_SECRET] == "s"
    assert annotations[dvapi.ANN_CERT_CONFIGMAP] == "c"
    # the importer pod is its first consumer: the claim says so, as CDI's does
    assert annotations[dvapi.ANN_BIND_IMMEDIATE] == "true"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "dv-1"


@pytest.mark.parametrize(
    ("given", "claimed"),
    [
        pytest.param({}, None, id="unset-the-default-class"),
        pytest.param({"storageClassName": ""}, "", id="empty-no-class"),
        pytest.param({"storageClassName": "fast"}, "fast", id="named"),
    ],
)
def test_storage_class_unset_is_the_defaults_and_empty_is_none(
    given: Json, claimed: str | None
) -> None:
    raw = _dv({**HTTP, "storage": {**HTTP["storage"], **given}})
    spec = dvrender.claim(dvapi.load(raw), raw)["spec"]
    assert spec.get("storageClassName", None) == claimed
    assert ("storageClassName" in spec) == (claimed is not None)


def test_importer_pod_mounts_credentials_never_passes_them() -> None:
    raw = _dv(HTTP)
    parsed = dvapi.load(raw)
    pod = dvrender.importer_pod(parsed, raw, dvrender.claim(parsed, raw), image="img")
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["kvd", "importer"]
    args = container["args"]
    assert args[args.index("--capacity") + 1] == str(1 << 30)
    assert args[args.index("--secret-dir") + 1] == dvrender.SECRET_DIR
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["cdi-secret"] == {"name": "cdi-secret", "secret": {"secretName": "s"}}
    assert volumes["cdi-certs"]["configMap"] == {"name": "c"}
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_block_claims_are_a_device() -> None:
    raw = _dv(
        {
            "source": {"blank": {}},
            "pvc": {"volumeMode": "Block", "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    parsed = dvapi.load(raw)
    pod = dvrender.importer_pod(parsed, raw, dvrender.claim(parsed, raw))
    (container,) = pod["spec"]["containers"]
    assert container["volumeDevices"] == [
        {"name": "cdi-data-vol", "devicePath": dvrender.BLOCK_DEVICE}
    ]
    assert "--capacity" not in container["args"]


def test_cross_namespace_clone_is_refused_naming_the_field() -> None:
    raw = _dv({"source": {"pvc": {"namespace": "other", "name": "src"}}, "storage": {}})
    parsed = dvapi.load(raw)
    source = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    claim = dvrender.claim(parsed, raw, source_claim=source)
    assert claim["spec"]["resources"] == {"requests": {"storage": "2Gi"}}
    with pytest.raises(dvrender.RenderError, match=r"spec\.source\.pvc\.namespace"):
        dvrender.importer_pod(parsed, raw, claim)


@pytest.mark.parametrize(
    ("claim", "bound"),
    [
        pytest.param({"status": {"phase": "Bound"}}, True, id="bound"),
        pytest.param(
            {"status": {"phase": "Pending"}, "spec": {"volumeName": "v"}}, False, id="pending"
        ),
        pytest.param({"spec": {"volumeName": "v"}}, True, id="named-no-binder"),
        pytest.param({"spec": {}}, False, id="nothing"),
    ],
)
def test_claim_bound(claim: Json, bound: bool) -> None:
    assert dvrender.claim_bound(claim) is bound


def test_a_vm_uses_its_templates_and_its_data_volume_volumes() -> None:
    vm = {
        "spec": {
            "dataVolumeTemplates": [{"metadata": {"name": "a"}}],
            "template": {
                "spec": {
                    "volumes": [
                        {"name": "x", "dataVolume": {"name": "a"}},
                        {"name": "y", "dataVolume": {"name": "b"}},
                    ]
                }
            },
        }
    }
    assert vmvolumes.data_volume_names(vm) == ["a", "b"]
