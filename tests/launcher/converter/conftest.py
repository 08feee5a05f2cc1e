"""Builders for converter tests: a VMI through the real `load` pipeline, a launcher context,
and comparisons of XML against expected snippets and golden files.

Golden files live in `golden/`; `KVD_UPDATE_GOLDEN=1 pytest tests/launcher/converter` rewrites
them from the converter's current output (review the diff before committing).
"""

from __future__ import annotations

import difflib
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kvd.api import kinds
from kvd.api.vmi import VirtualMachineInstance, VirtualMachineInstanceSpec
from kvd.launcher.converter.context import ConverterContext, DiskSource, QemuIds

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("KVD_UPDATE_GOLDEN") == "1"
UID = "0b2c6f4e-8a3d-4c1f-9e57-3d2a1b0c9f18"
RUN = Path("/var/run/kvd/pods/0b2c6f4e")
ROOTDISK = DiskSource(path=RUN / "disks/rootdisk.qcow2", format="qcow2")
QEMU_IDS = QemuIds(uid=64055, gid=64055)  # Debian's libvirt-qemu: any non-root ids will do


def manifest(
    domain: dict[str, Any] | None = None,
    *,
    volumes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A small VMI manifest; `domain` keys replace the default domain's keys."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "testvmi", "namespace": "default", "uid": UID},
        "spec": {
            "domain": {"resources": {"requests": {"memory": "128Mi"}}, **(domain or {})},
            "volumes": volumes
            if volumes is not None
            else [{"name": "rootdisk", "containerDisk": {"image": "kvd/demo"}}],
            **spec,
        },
    }


def vmi(domain: dict[str, Any] | None = None, **kwargs: Any) -> VirtualMachineInstance:
    """Parsed, defaulted and validated, exactly as the launcher receives a VMI."""
    obj = kinds.load(manifest(domain, **kwargs))
    assert isinstance(obj, VirtualMachineInstance)
    return obj


def spec(domain: dict[str, Any] | None = None, **kwargs: Any) -> VirtualMachineInstanceSpec:
    return vmi(domain, **kwargs).spec


def context(**overrides: Any) -> ConverterContext:
    base = ConverterContext(
        domain_type="kvm",
        qemu_ids=QEMU_IDS,
        disks={"rootdisk": ROOTDISK},
        console_socket=RUN / "console.sock",
        console_log=RUN / "console.log",
        vnc_socket=RUN / "vnc" / "vnc.sock",
        vmi_uid=UID,
        grace_period_seconds=30,
    )
    return replace(base, **overrides)


def canonical(xml: str | ET.Element) -> str:
    """Whitespace-insensitive, attribute-order-insensitive form, for comparing snippets."""
    text = xml if isinstance(xml, str) else ET.tostring(xml, encoding="unicode")
    return ET.canonicalize(text, strip_text=True)


def assert_xml(actual: ET.Element | list[ET.Element], expected: str) -> None:
    """`actual` (one element, or a list wrapped in <x>) equals the `expected` snippet."""
    if isinstance(actual, list):
        wrapper = ET.Element("x")
        wrapper.extend(actual)
        actual = wrapper
        expected = f"<x>{expected}</x>"
    assert canonical(actual) == canonical(expected)


def assert_golden(name: str, xml: str) -> None:
    """`xml` equals golden/<name>.xml byte for byte, or the test fails showing the diff."""
    path = GOLDEN / f"{name}.xml"
    if UPDATE_GOLDEN:
        path.write_text(xml)
        return
    if not path.exists():
        pytest.fail(f"{path} does not exist; create it with KVD_UPDATE_GOLDEN=1")
    expected = path.read_text()
    if xml != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            xml.splitlines(keepends=True),
            fromfile=f"golden/{name}.xml",
            tofile="converted",
        )
        pytest.fail(
            f"converted XML differs from golden/{name}.xml (KVD_UPDATE_GOLDEN=1 rewrites it "
            "after review):\n" + "".join(diff)
        )
