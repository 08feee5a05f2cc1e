"""Whole domains: golden files, determinism, naming, and refusals."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from kvd.api import codec, kinds
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.converter import ContextError, ConversionError, convert, domain_name
from kvd.launcher.converter.context import QemuIds
from tests.launcher.converter.cases import CASES, Case
from tests.launcher.converter.conftest import (
    assert_golden,
    assert_xml,
    context,
    manifest,
    vmi,
)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_golden(case: Case) -> None:
    obj = kinds.load(case.manifest)
    assert isinstance(obj, VirtualMachineInstance)
    assert_golden(case.name, convert(obj, case.context))


def test_minimal_domain_shape() -> None:
    """What a user of the minimal VMI relies on, spelled out beside the golden file."""
    root = ET.fromstring(convert(vmi(), context()))
    assert root.get("type") == "kvm"
    assert root.findtext("name") == "default_testvmi"
    assert root.findtext("memory") == "131072"
    assert [(e.tag, e.text) for e in root if e.tag.startswith("on_")] == [
        ("on_poweroff", "destroy"),
        ("on_reboot", "restart"),
        ("on_crash", "destroy"),
    ]
    assert [child.tag for child in root] == [
        "name", "uuid", "metadata", "memory", "vcpu", "sysinfo", "os", "features", "cpu",
        "clock", "on_poweroff", "on_reboot", "on_crash", "devices", "seclabel",
    ]  # fmt: skip


def test_qemu_runs_as_the_ids_in_the_context_and_nothing_is_relabeled() -> None:
    root = ET.fromstring(convert(vmi(), context(qemu_ids=QemuIds(uid=107, gid=108))))
    assert_xml(
        root.find("seclabel"),  # type: ignore[arg-type]
        '<seclabel type="static" model="dac" relabel="no"><label>+107:+108</label></seclabel>',
    )


def test_negative_qemu_ids_are_a_launcher_bug() -> None:
    with pytest.raises(ContextError, match="must not be negative"):
        convert(vmi(), context(qemu_ids=QemuIds(uid=-1, gid=0)))


def test_emulated_domain_type() -> None:
    assert ET.fromstring(convert(vmi(), context(domain_type="qemu"))).get("type") == "qemu"


def test_deterministic() -> None:
    assert convert(vmi(), context()) == convert(vmi(), context())


def test_undefaulted_vmi_converts_like_the_defaulted_one() -> None:
    raw = codec.decode(VirtualMachineInstance, manifest())
    assert convert(raw, context()) == convert(vmi(), context())


def test_domain_name() -> None:
    assert domain_name("kube-system", "my.vm") == "kube-system_my.vm"
    with pytest.raises(ConversionError):
        domain_name("", "vm")


def test_namespace_is_required() -> None:
    obj = vmi()
    unnamespaced = replace(obj, metadata=replace(obj.metadata, namespace=None))
    with pytest.raises(ConversionError, match=r"metadata\.namespace and metadata\.name"):
        convert(unnamespaced, context())


def test_efi_without_ovmf_is_a_conversion_error() -> None:
    efi = vmi({"firmware": {"bootloader": {"efi": {}}}})
    with pytest.raises(ConversionError, match="none is installed for this launcher"):
        convert(efi, context())
