"""`<features>` (ACPI and APIC on by default, SMM when asked or for Secure Boot) and `<clock>`."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.launcher.converter import clock, features
from tests.launcher.converter.conftest import assert_xml, spec


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param({}, "<features><acpi/><apic/></features>", id="acpi-default-on"),
        pytest.param(
            {"features": {"acpi": {}}}, "<features><acpi/><apic/></features>", id="acpi-empty"
        ),
        pytest.param(
            {"features": {"acpi": {"enabled": True}}},
            "<features><acpi/><apic/></features>",
            id="acpi-on",
        ),
        pytest.param(
            {"features": {"acpi": {"enabled": False}}},
            "<features><apic/></features>",
            id="acpi-off",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"efi": {"secureBoot": True}}}},
            '<features><acpi/><apic/><smm state="on"/></features>',
            id="secure-boot-needs-smm",
        ),
        pytest.param(
            {"firmware": {"bootloader": {"efi": {"secureBoot": False}}}},
            "<features><acpi/><apic/></features>",
            id="efi-without-secure-boot",
        ),
        pytest.param(
            {"features": {"apic": {"enabled": False}}},
            "<features><acpi/></features>",
            id="apic-off",
        ),
        pytest.param(
            {"features": {"acpi": {}, "apic": {"endOfInterrupt": True}}},
            '<features><acpi/><apic eoi="on"/></features>',
            id="apic-eoi",
        ),
        pytest.param(
            {"features": {"smm": {}}},
            '<features><acpi/><apic/><smm state="on"/></features>',
            id="smm-on",
        ),
        pytest.param(
            {"features": {"smm": {"enabled": False}}},
            '<features><acpi/><apic/><smm state="off"/></features>',
            id="smm-off",
        ),
        pytest.param(
            # KubeVirt's vmi-secureboot example: SMM asked for as well as implied.
            {
                "features": {"acpi": {}, "smm": {"enabled": True}},
                "firmware": {"bootloader": {"efi": {"secureBoot": True}}},
            },
            '<features><acpi/><apic/><smm state="on"/></features>',
            id="secure-boot-and-smm",
        ),
    ],
)
def test_features(domain: dict[str, Any], expected: str) -> None:
    assert_xml(features.features(spec(domain)), expected)


def test_clock_is_utc_with_linux_friendly_timers() -> None:
    assert_xml(
        clock.clock(spec()),
        '<clock offset="utc">'
        '<timer name="rtc" tickpolicy="catchup"/>'
        '<timer name="pit" tickpolicy="delay"/>'
        '<timer name="hpet" present="no"/>'
        "</clock>",
    )


@pytest.mark.parametrize(
    ("spec_clock", "expected"),
    [
        pytest.param(
            # KubeVirt's vmi-windows example, less its Hyper-V timer.
            {
                "utc": {},
                "timer": {
                    "hpet": {"present": False},
                    "pit": {"tickPolicy": "delay"},
                    "rtc": {"tickPolicy": "catchup"},
                },
            },
            '<clock offset="utc" adjustment="reset">'
            '<timer name="rtc" tickpolicy="catchup" present="yes"/>'
            '<timer name="pit" tickpolicy="delay" present="yes"/>'
            '<timer name="hpet" present="no"/>'
            "</clock>",
            id="windows-example",
        ),
        pytest.param(
            {"utc": {"offsetSeconds": -3600}},
            '<clock offset="utc" adjustment="-3600"/>',
            id="utc-offset",
        ),
        pytest.param(
            {"timezone": "Europe/Paris", "timer": {"kvm": {}, "rtc": {"track": "wall"}}},
            '<clock offset="timezone" timezone="Europe/Paris">'
            '<timer name="rtc" track="wall" present="yes"/>'
            '<timer name="kvmclock" present="yes"/>'
            "</clock>",
            id="timezone-and-timers",
        ),
        pytest.param({}, '<clock offset="utc"/>', id="empty-clock-is-libvirts-default"),
    ],
)
def test_clock_from_the_spec(spec_clock: dict[str, Any], expected: str) -> None:
    assert_xml(clock.clock(spec({"clock": spec_clock})), expected)


@pytest.mark.parametrize(
    ("emulated", "cache"),
    [pytest.param(True, "32", id="tcg-capped"), pytest.param(False, None, id="kvm-none")],
)
def test_tcg_translation_cache_is_capped_only_when_emulated(
    emulated: bool, cache: str | None
) -> None:
    element = features.features(spec(), emulated=emulated)
    found = element.find("tcg/tb-cache")
    assert (found.text if found is not None else None) == cache
    if found is not None:
        assert found.get("unit") == "MiB"
