"""cloud-init ISOs: the label cloud-init looks for and exactly the files it reads, in every name
space (ISO9660, Rock Ridge, Joliet), read back with pycdlib and, where present, blkid."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest

from kvd.launcher.converter.context import DiskSource
from tests.launcher.storage.conftest import UID, Pod, make_vmi

USER_DATA = "#!/bin/sh\necho hello-from-userdata\n"
NETWORK = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"


def _read(image_path: Path, namespace: str) -> tuple[str, dict[str, bytes]]:
    """Label and files as one reader sees them: `rr`, `joliet` or plain `iso` names."""
    image = pycdlib.PyCdlib()
    image.open(str(image_path))
    try:
        if namespace == "joliet":
            assert image.joliet_vd is not None, "no Joliet descriptor"
            label = image.joliet_vd.volume_identifier.decode("utf-16-be")
        else:
            label = image.pvd.volume_identifier.decode()
        files: dict[str, bytes] = {}
        for directory, _, names in image.walk(**{f"{namespace}_path": "/"}):
            for name in names:
                in_iso = f"{directory.rstrip('/')}/{name}"
                buffer = io.BytesIO()
                image.get_file_from_iso_fp(buffer, **{f"{namespace}_path": in_iso})
                files[in_iso.lstrip("/")] = buffer.getvalue()
        return label.rstrip(" "), files
    finally:
        image.close()


NAMESPACES = [pytest.param(n, id=n) for n in ("rr", "joliet", "iso")]


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_nocloud_iso_holds_exactly_the_nocloud_files(pod: Pod, namespace: str) -> None:
    volume = {"name": "cloudinit", "cloudInitNoCloud": {"userData": USER_DATA}}
    sources = pod.prepare(make_vmi(volume, name="testvm"))
    path = pod.run_dir / "disks" / "cloud-init" / "cloudinit.iso"
    assert sources == {
        "cloudinit": DiskSource(path=path, format="raw", read_only=True, is_iso=True)
    }
    assert _read(path, namespace) == (
        "cidata",
        {
            "meta-data": f"instance-id: {UID}\nlocal-hostname: testvm\n".encode(),
            "user-data": USER_DATA.encode(),
        },
    )


def test_nocloud_decodes_base64_and_adds_network_config(pod: Pod) -> None:
    script = b"#!/bin/sh\nprintf '\\xff binary-safe'\n"
    volume = {
        "name": "cloudinit",
        "cloudInitNoCloud": {
            "userDataBase64": base64.b64encode(script).decode(),
            "networkDataBase64": base64.b64encode(NETWORK.encode()).decode(),
        },
    }
    path = pod.prepare(make_vmi(volume, hostname="web"))["cloudinit"].path
    _, files = _read(path, "rr")
    assert files == {
        "meta-data": f"instance-id: {UID}\nlocal-hostname: web\n".encode(),
        "user-data": script,
        "network-config": NETWORK.encode(),
    }


def test_nocloud_without_user_data_still_has_the_file_nocloud_requires(pod: Pod) -> None:
    volume = {"name": "cloudinit", "cloudInitNoCloud": {"networkData": NETWORK}}
    _, files = _read(pod.prepare(make_vmi(volume))["cloudinit"].path, "rr")
    assert (files["user-data"], files["network-config"]) == (b"", NETWORK.encode())


@pytest.mark.skipif(shutil.which("blkid") is None, reason="blkid is not installed")
def test_blkid_finds_the_label_cloud_init_searches_for(pod: Pod) -> None:
    volume = {"name": "cloudinit", "cloudInitNoCloud": {"userData": USER_DATA}}
    path = pod.prepare(make_vmi(volume))["cloudinit"].path
    done = subprocess.run(
        ["blkid", "-p", "-o", "export", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    fields = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert (fields["TYPE"], fields["LABEL"]) == ("iso9660", "cidata")


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_config_drive_layout(pod: Pod, namespace: str) -> None:
    network = json.dumps({"links": [], "networks": [], "services": []})
    volume = {
        "name": "configdrive",
        "cloudInitConfigDrive": {"userData": USER_DATA, "networkData": network},
    }
    sources = pod.prepare(make_vmi(volume, name="testvm", hostname="web"))
    path = pod.run_dir / "disks" / "cloud-init" / "configdrive.iso"
    assert sources["configdrive"] == DiskSource(
        path=path, format="raw", read_only=True, is_iso=True
    )
    label, files = _read(path, namespace)
    assert label == "config-2"
    assert sorted(files) == [
        "openstack/latest/meta_data.json",
        "openstack/latest/network_data.json",
        "openstack/latest/user_data",
    ]
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta == {"uuid": UID, "hostname": "web", "name": "testvm"}
    assert files["openstack/latest/user_data"] == USER_DATA.encode()
    assert files["openstack/latest/network_data.json"] == network.encode()


def test_config_drive_without_network_data_has_no_network_file(pod: Pod) -> None:
    volume = {"name": "configdrive", "cloudInitConfigDrive": {"userData": USER_DATA}}
    _, files = _read(pod.prepare(make_vmi(volume))["configdrive"].path, "rr")
    assert "openstack/latest/network_data.json" not in files


def test_second_prepare_leaves_the_iso_untouched(pod: Pod) -> None:
    vmi = make_vmi({"name": "cloudinit", "cloudInitNoCloud": {"userData": USER_DATA}})
    path = pod.prepare(vmi)["cloudinit"].path
    before = os.stat(path)
    pod.prepare(vmi)
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_an_iso_with_other_contents_is_replaced(pod: Pod) -> None:
    pod.prepare(make_vmi({"name": "cloudinit", "cloudInitNoCloud": {"userData": "old"}}))
    path = pod.prepare(
        make_vmi({"name": "cloudinit", "cloudInitNoCloud": {"userData": USER_DATA}})
    )["cloudinit"].path
    assert _read(path, "rr")[1]["user-data"] == USER_DATA.encode()
    assert [p.name for p in path.parent.iterdir()] == ["cloudinit.iso"]  # no partial left
