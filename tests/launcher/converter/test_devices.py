"""Serial console, display, RNG, and the assembled `<devices>` (no USB, no balloon)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvd.launcher.converter import console, devices, graphics, rng
from tests.launcher.converter.conftest import assert_xml, context, spec

RUN = "/var/run/kvd/pods/0b2c6f4e"
CONSOLE = (
    f'<serial type="unix"><source mode="bind" path="{RUN}/console.sock"/>'
    f'<log file="{RUN}/console.log" append="on"/><target type="isa-serial" port="0"/></serial>'
    f'<console type="unix"><source mode="bind" path="{RUN}/console.sock"/>'
    '<target type="serial" port="0"/></console>'
)


@pytest.mark.parametrize(
    ("devices_spec", "expected"),
    [
        pytest.param({}, CONSOLE, id="default-on"),
        pytest.param({"autoattachSerialConsole": True}, CONSOLE, id="on"),
        pytest.param({"autoattachSerialConsole": False}, "", id="off"),
    ],
)
def test_console(devices_spec: dict[str, Any], expected: str) -> None:
    assert_xml(console.console(spec({"devices": devices_spec}), context()), expected)


DISPLAY = (
    f'<graphics type="vnc"><listen type="socket" socket="{RUN}/vnc/vnc.sock"/></graphics>'
    '<video><model type="vga" vram="16384" heads="1" primary="yes"/></video>'
)


@pytest.mark.parametrize(
    ("devices_spec", "expected"),
    [
        pytest.param({}, DISPLAY, id="default-on"),
        pytest.param({"autoattachGraphicsDevice": True}, DISPLAY, id="on"),
        pytest.param({"autoattachGraphicsDevice": False}, "", id="off"),
    ],
)
def test_display_is_vga_and_vnc_on_a_unix_socket_only(
    devices_spec: dict[str, Any], expected: str
) -> None:
    elements = graphics.graphics(spec({"devices": devices_spec}), context())
    assert_xml(elements, expected)
    for element in elements:
        assert "port" not in element.attrib  # never a TCP port, not even an automatic one
        assert element.find("listen[@type='address']") is None


@pytest.mark.parametrize(
    ("devices_spec", "expected"),
    [
        pytest.param({}, "", id="absent"),
        pytest.param(
            {"rng": {}},
            '<rng model="virtio"><backend model="random">/dev/urandom</backend></rng>',
            id="virtio-urandom",
        ),
    ],
)
def test_rng(devices_spec: dict[str, Any], expected: str) -> None:
    assert_xml(rng.rng(spec({"devices": devices_spec})), expected)


def test_devices_are_minimal_and_in_libvirt_order() -> None:
    element = devices.devices(spec({"devices": {"rng": {}}}), context())
    assert [child.tag for child in element] == [
        "disk",
        "controller",
        "serial",
        "console",
        "graphics",
        "video",
        "memballoon",
        "rng",
    ]
    assert_xml(element.findall("controller"), '<controller type="usb" model="none"/>')
    assert_xml(element.findall("memballoon"), '<memballoon model="none"/>')
    for absent in ("sound", "input", "interface"):
        assert element.find(absent) is None, absent


def test_emulator_comes_first_when_given() -> None:
    element = devices.devices(spec(), context(emulator=Path("/usr/bin/qemu-system-x86_64")))
    assert_xml(element[0], "<emulator>/usr/bin/qemu-system-x86_64</emulator>")
