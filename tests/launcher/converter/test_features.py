"""`<features>` (ACPI on by default, APIC, SMM for Secure Boot) and `<clock>`."""

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
    ],
)
def test_features(domain: dict[str, Any], expected: str) -> None:
    assert_xml(features.features(spec(domain)), expected)


def test_clock_is_utc_with_linux_friendly_timers() -> None:
    assert_xml(
        clock.clock(),
        '<clock offset="utc">'
        '<timer name="rtc" tickpolicy="catchup"/>'
        '<timer name="pit" tickpolicy="delay"/>'
        '<timer name="hpet" present="no"/>'
        "</clock>",
    )


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
