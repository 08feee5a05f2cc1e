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
                "terminationGracePeriodSeconds": "5",
                "gracePeriodMarginSeconds": "0",
                "launcherImage": " registry/kvd:1 ",
            },
            ClusterConfig(
                use_emulation=False,
                memory_overhead="100Mi",
                termination_grace_period_seconds=5,
                grace_margin_seconds=0,
                launcher_image="registry/kvd:1",
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
            {"terminationGracePeriodSeconds": "-3"},
            ClusterConfig(),
            ['terminationGracePeriodSeconds: "-3" is not a whole number of seconds'],
            id="bad-seconds",
        ),
        pytest.param(
            {"useEmulaton": "true"},
            ClusterConfig(),
            [
                "useEmulaton: unknown setting; known: gracePeriodMarginSeconds, launcherImage, "
                "memoryOverhead, terminationGracePeriodSeconds, useEmulation"
            ],
            id="typo-named",
        ),
    ],
)
def test_parse(data: dict[str, str] | None, config: ClusterConfig, problems: list[str]) -> None:
    assert parse(data) == (config, problems)
