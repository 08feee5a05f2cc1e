"""The cluster ConfigMap's data → settings: defaults when absent, and a bad value is named and
replaced by its default rather than stopping the controller."""

from __future__ import annotations

import pytest

from kvd.controller.config import ClusterConfig, parse


@pytest.mark.parametrize(
    ("data", "config", "problems"),
    [
        pytest.param(None, ClusterConfig(), [], id="absent"),
        pytest.param(
            {
                "useEmulation": "False",
                "memoryOverhead": "100Mi",
                "gracePeriodMarginSeconds": "0",
                "launcherImage": " registry/kvd:1 ",
                "cpuAllocationRatio": " 100 ",
            },
            ClusterConfig(
                use_emulation=False,
                memory_overhead="100Mi",
                grace_margin_seconds=0,
                launcher_image="registry/kvd:1",
                cpu_allocation_ratio=100,
            ),
            [],
            id="all-set",
        ),
        pytest.param(
            {"useEmulation": "yes"},
            ClusterConfig(),
            ['useEmulation: "yes" is not "true" or "false"'],
            id="bad-bool",
        ),
        pytest.param(
            {"memoryOverhead": "lots"},
            ClusterConfig(),
            ['memoryOverhead: "lots" is not a quantity such as 128Mi'],
            id="bad-quantity",
        ),
        pytest.param(
            {"memoryOverhead": "-1Mi"},
            ClusterConfig(),
            ['memoryOverhead: "-1Mi" is not a quantity such as 128Mi'],
            id="negative-quantity",
        ),
        pytest.param(
            {"gracePeriodMarginSeconds": "-3"},
            ClusterConfig(),
            ['gracePeriodMarginSeconds: "-3" is not a whole number of seconds'],
            id="bad-seconds",
        ),
        pytest.param(
            {"cpuAllocationRatio": "0"},
            ClusterConfig(),
            ['cpuAllocationRatio: "0" is not a whole number from 1 to 1000'],
            id="ratio-zero",
        ),
        pytest.param(
            {"cpuAllocationRatio": "2.5"},
            ClusterConfig(),
            ['cpuAllocationRatio: "2.5" is not a whole number from 1 to 1000'],
            id="ratio-fraction",
        ),
        pytest.param(
            {"cpuAllocationRatio": "1001"},
            ClusterConfig(),
            ['cpuAllocationRatio: "1001" is not a whole number from 1 to 1000'],
            id="ratio-too-high",
        ),
        pytest.param(
            {"terminationGracePeriodSeconds": "5", "gracePeriodMarginSeconds": "10"},
            ClusterConfig(grace_margin_seconds=10),
            [
                "terminationGracePeriodSeconds: not a kvd setting: the grace period is set per "
                "VMI in spec.terminationGracePeriodSeconds (KubeVirt's default, 30, applies when "
                "it is unset); remove the key"
            ],
            id="grace-is-per-vmi",
        ),
        pytest.param(
            {"useEmulaton": "true"},
            ClusterConfig(),
            [
                "useEmulaton: unknown setting; known: cpuAllocationRatio, "
                "gracePeriodMarginSeconds, launcherImage, memoryOverhead, useEmulation"
            ],
            id="typo-named",
        ),
    ],
)
def test_parse(data: dict[str, str] | None, config: ClusterConfig, problems: list[str]) -> None:
    assert parse(data) == (config, problems)
