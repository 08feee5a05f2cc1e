"""Real libvirt accepts what the converter writes.

Two independent checks over every golden domain:

- `virt-xml-validate` (libvirt-clients) validates against libvirt's own RelaxNG schema, which
  catches misspelt elements, attributes in the wrong place and bad values.
- libvirt's `test:///default` driver parses and defines it through libvirt's generic domain
  code (post-parse fill-in, generic validation such as "a lun needs a block source"), then
  dumps it back, showing what libvirt kept. It does not run the QEMU driver's checks (CPU
  modes against QEMU's capabilities, firmware files, controller models): those are left to
  the integration tests that start the domain under a real libvirtd.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import libvirt
import pytest

from kvd.launcher.converter import (
    METADATA_NAMESPACE,
    METADATA_PREFIX,
    convert,
    read_metadata,
    render_metadata,
)
from tests.launcher.converter.cases import CASES, Case
from tests.launcher.converter.conftest import GOLDEN, UID, context, vmi

# Named from the cases, not globbed, so an update run (test_domain writes first) checks the
# files it just wrote.
GOLDEN_FILES = [GOLDEN / f"{case.name}.xml" for case in CASES]


@pytest.fixture(scope="module")
def virt_xml_validate() -> str:
    found = shutil.which("virt-xml-validate")
    if found is None:
        pytest.fail("virt-xml-validate is missing: install libvirt-clients (make setup)")
    return found


@pytest.fixture
def conn() -> Iterator[Any]:
    """The test driver; its state is shared per process, so every test undefines its own."""
    connection = libvirt.open("test:///default")
    try:
        yield connection
    finally:
        connection.close()


def test_every_golden_file_belongs_to_a_case() -> None:
    """A stale golden file would be checked by nothing."""
    assert {p.stem for p in GOLDEN.glob("*.xml")} == {c.name for c in CASES}


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in GOLDEN_FILES])
def test_golden_files_match_libvirts_schema(virt_xml_validate: str, path: Path) -> None:
    result = subprocess.run(
        [virt_xml_validate, str(path), "domain"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_can_fail(virt_xml_validate: str, tmp_path: Path) -> None:
    """The check above is only worth something if a schema error makes it fail."""
    bad = tmp_path / "bad.xml"
    bad.write_text((GOLDEN / "minimal.xml").read_text().replace('mode="host-model"', 'mode="x"'))
    result = subprocess.run(
        [virt_xml_validate, str(bad), "domain"], capture_output=True, timeout=60, check=False
    )
    assert result.returncode != 0


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_test_driver_defines_every_case(conn: Any, case: Case) -> None:
    xml = (GOLDEN / f"{case.name}.xml").read_text()
    dom = conn.defineXML(xml)
    try:
        kept = ET.fromstring(dom.XMLDesc(0))
        sent = ET.fromstring(xml)
        assert dom.name() == sent.findtext("name")
        assert dom.UUIDString() == sent.findtext("uuid")
        # Every device the converter wrote is still there (libvirt groups disks by bus).
        assert sorted(_device_summary(kept)) == sorted(_device_summary(sent))
        # User aliases survive: the domain manager maps libvirt devices back to spec names.
        assert {a.get("name") for a in kept.iter("alias")} == {
            a.get("name") for a in sent.iter("alias")
        }
        assert read_metadata(dom.XMLDesc(0)) == read_metadata(xml)
    finally:
        dom.undefine()


def test_metadata_update_as_the_domain_manager_does_it(conn: Any) -> None:
    """setMetadata(render_metadata(...)) then both read paths see the shutdown request."""
    dom = conn.defineXML(convert(vmi(), context()))
    try:
        meta = read_metadata(dom.XMLDesc(0))
        assert meta.uid == UID and meta.shutdown_requested_at is None
        when = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
        updated = replace(meta, shutdown_requested_at=when)
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            render_metadata(updated),
            METADATA_PREFIX,
            METADATA_NAMESPACE,
            libvirt.VIR_DOMAIN_AFFECT_CONFIG,
        )
        fragment = dom.metadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            METADATA_NAMESPACE,
            libvirt.VIR_DOMAIN_AFFECT_CONFIG,
        )
        assert read_metadata(fragment) == updated
        assert read_metadata(dom.XMLDesc(0)) == updated
    finally:
        dom.undefine()


def test_test_driver_refuses_what_the_converter_guards_against(conn: Any) -> None:
    """A lun on a file is refused by libvirt too: the converter's check mirrors a real rule."""
    xml = (GOLDEN / "disks.xml").read_text()
    broken = xml.replace('<disk type="block" device="lun">', '<disk type="file" device="lun">')
    broken = broken.replace('<source dev="/dev/pvc-shared" />', '<source file="/pvc/shared" />')
    assert broken != xml
    with pytest.raises(libvirt.libvirtError, match="lun"):
        conn.defineXML(broken)


def _device_summary(root: ET.Element) -> list[tuple[str, str, str]]:
    """(tag, type-ish attribute, target/alias) of each device the converter emits."""
    summary = []
    devices = root.find("devices")
    assert devices is not None
    for device in devices:
        if device.tag in ("disk", "interface", "serial", "console", "rng", "memballoon"):
            target = device.find("target")
            alias = device.find("alias")
            summary.append(
                (
                    device.tag,
                    device.get("type") or device.get("model") or "",
                    (target.get("dev") if target is not None else None)
                    or (alias.get("name") if alias is not None else None)
                    or "",
                )
            )
    return summary
