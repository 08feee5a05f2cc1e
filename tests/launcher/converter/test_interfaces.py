"""`<interface>`s: prepared taps only, model and MAC from spec or context."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.launcher.converter import interfaces
from kvd.launcher.converter.context import InterfaceTarget
from tests.launcher.converter.conftest import assert_xml, context, spec

TAIL = '<alias name="ua-default"/><rom enabled="no"/>'


@pytest.mark.parametrize(
    ("domain", "targets", "expected"),
    [
        pytest.param(
            {},
            {"default": InterfaceTarget(tap="tap0", mac="52:54:00:aa:bb:cc")},
            '<interface type="ethernet"><mac address="52:54:00:aa:bb:cc"/>'
            f'<target dev="tap0" managed="no"/><model type="virtio"/>{TAIL}</interface>',
            id="default-pod-interface-mac-from-context",
        ),
        pytest.param(
            {},
            {"default": InterfaceTarget(tap="tap0")},
            '<interface type="ethernet"><target dev="tap0" managed="no"/>'
            f'<model type="virtio"/>{TAIL}</interface>',
            id="no-mac-libvirt-chooses",
        ),
        pytest.param(
            {
                "devices": {
                    "interfaces": [
                        {
                            "name": "default",
                            "masquerade": {},
                            "model": "e1000e",
                            "macAddress": "02-00-00-AB-CD-EF",
                        }
                    ]
                }
            },
            {"default": InterfaceTarget(tap="tap7", mac="52:54:00:aa:bb:cc")},
            '<interface type="ethernet"><mac address="02:00:00:ab:cd:ef"/>'
            f'<target dev="tap7" managed="no"/><model type="e1000e"/>{TAIL}</interface>',
            id="spec-model-and-mac-win",
        ),
        pytest.param({}, {}, "", id="no-context-entry-skipped"),
    ],
)
def test_interfaces(
    domain: dict[str, Any], targets: dict[str, InterfaceTarget], expected: str
) -> None:
    s = spec(domain, networks=[{"name": "default", "pod": {}}] if domain else [])
    assert_xml(interfaces.interfaces(s, context(interfaces=targets)), expected)


def test_only_interfaces_with_a_tap_are_presented() -> None:
    """The network code serves what it can; the rest waits for it, never half-configured."""
    s = spec(
        {"devices": {"interfaces": [{"name": "default", "bridge": {}}]}},
        networks=[{"name": "default", "pod": {}}],
    )
    assert interfaces.interfaces(s, context(interfaces={"other": InterfaceTarget(tap="t")})) == []
