"""A pod's volumes made real on the host: here, claims bound to hostPath/local PersistentVolumes
(pure logic over a fake API read; the containers that use them are in test_containers)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from kvd.local import images
from kvd.local.node import volumes
from kvd.local.node.podspec import ContainerConfigError, Volume
from kvd.local.storage import loop

Json = dict[str, Any]


def _pod(claim: str) -> Json:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
    }


def _prepare(tmp_path: Path, claim: str, pvs: dict[str, Json]) -> Volume:
    def read_pvc(namespace: str, name: str) -> tuple[Json | None, Json | None]:
        assert namespace == "default"
        if name not in pvs:
            return None, None
        return {"metadata": {"name": name}}, pvs[name] or None

    prepared = volumes.prepare(
        _pod(claim),
        volume_dir=lambda name: tmp_path / name,
        store=images.ImageStore(tmp_path / "images"),
        lookup=lambda kind, namespace, name: None,
        read_pvc=read_pvc,
    )
    return prepared["v"]


def _pv(path: Path, **spec: Any) -> Json:
    return {"metadata": {"name": "pv"}, "spec": {"hostPath": {"path": str(path)}, **spec}}


def test_a_filesystem_claim_is_its_volumes_directory(tmp_path: Path) -> None:
    assert _prepare(tmp_path, "c", {"c": _pv(tmp_path)}) == Volume(source=tmp_path)


def test_a_block_claim_is_a_device_to_map_not_to_mount(tmp_path: Path) -> None:
    device = tmp_path / "dev"
    device.mkdir()  # the mode decides, as the kubelet's volumeMode does, not the file's type
    volume = _prepare(tmp_path, "c", {"c": _pv(device, volumeMode="Block")})
    assert volume == Volume(source=device, block=True, block_claim=True)


def test_a_block_claim_over_a_file_gets_the_loop_device_over_it(tmp_path: Path) -> None:
    backing = tmp_path / "pv.img"
    backing.write_bytes(b"\0" * (1 << 20))
    try:
        volume = _prepare(tmp_path, "c", {"c": _pv(backing, volumeMode="Block")})
        [device] = loop.devices(backing)
        assert volume == Volume(source=device, block=True, block_claim=True)
        assert stat.S_ISBLK(device.stat().st_mode)
        # a second pod (or a node restart) gets the same device, not another one
        assert _prepare(tmp_path, "c", {"c": _pv(backing, volumeMode="Block")}).source == device
    finally:
        loop.detach(backing)
    assert loop.devices(backing) == []


@pytest.mark.parametrize(
    ("pvs", "words"),
    [
        pytest.param({}, 'persistentvolumeclaim "c" not found', id="no-claim"),
        pytest.param({"c": {}}, 'persistentvolumeclaim "c" is not bound', id="unbound"),
        pytest.param(
            {"c": {"metadata": {"name": "pv"}, "spec": {"nfs": {"server": "x"}}}},
            "no hostPath or local source",
            id="nfs",
        ),
    ],
)
def test_a_claim_that_cannot_be_attached_says_why(
    tmp_path: Path, pvs: dict[str, Json], words: str
) -> None:
    with pytest.raises(ContainerConfigError, match=words):
        _prepare(tmp_path, "c", pvs)
