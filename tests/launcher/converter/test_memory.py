"""Guest memory in KiB, rounded up to whole MiB."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.launcher.converter import memory
from tests.launcher.converter.conftest import assert_xml, spec


@pytest.mark.parametrize(
    ("domain", "kib"),
    [
        pytest.param({"memory": {"guest": "128Mi"}}, 131072, id="binary-exact"),
        pytest.param({"memory": {"guest": "1Gi"}}, 1048576, id="gibibyte"),
        # 1024M = 976562.5 KiB = 976.56 MiB: rounded up to 977 MiB, never down.
        pytest.param({"memory": {"guest": "1024M"}}, 977 * 1024, id="decimal-rounds-up"),
        pytest.param({"memory": {"guest": "1048577"}}, 2 * 1024, id="one-byte-over-a-mib"),
        pytest.param({"memory": {"guest": "1.5Gi"}}, 1536 * 1024, id="fractional"),
        # Defaulting copies the memory request when memory.guest is unset (KubeVirt).
        pytest.param({"resources": {"requests": {"memory": "256Mi"}}}, 262144, id="from-request"),
        pytest.param(
            {"resources": {"requests": {"memory": "1Gi"}}, "memory": {"guest": "512Mi"}},
            524288,
            id="guest-wins-over-request",
        ),
    ],
)
def test_guest_memory(domain: dict[str, Any], kib: int) -> None:
    assert_xml(memory.memory(spec(domain)), f'<memory unit="KiB">{kib}</memory>')
