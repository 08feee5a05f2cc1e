"""kvdctl's verbs turn virtctl's flags into KubeVirt's option bodies."""

from __future__ import annotations

import argparse

import pytest

from kvd.cli import kvdctl, program, verbs


def parse(*argv: str) -> argparse.Namespace:
    return program.parser("kvdctl", "", kvdctl.COMMANDS).parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "body"),
    [
        pytest.param(["start", "vm"], {}, id="start"),
        pytest.param(["stop", "vm"], {}, id="stop"),
        pytest.param(["stop", "vm", "--force"], {"gracePeriod": 0}, id="force"),
        pytest.param(
            ["stop", "vm", "--force", "--grace-period=5"], {"gracePeriod": 5}, id="force-grace"
        ),
        pytest.param(
            ["restart", "vm", "--force", "--grace-period=0"],
            {"gracePeriodSeconds": 0},
            id="restart-force",
        ),
        pytest.param(["start", "vm", "--dry-run"], {"dryRun": ["All"]}, id="dry-run"),
    ],
)
def test_flags_become_kubevirts_options(argv: list[str], body: dict[str, object]) -> None:
    assert verbs.options(parse(*argv)) == body


def test_a_grace_period_needs_force_as_in_virtctl() -> None:
    with pytest.raises(program.CommandError, match="--grace-period needs --force"):
        verbs.options(parse("stop", "vm", "--grace-period=3"))


def test_the_commands_take_kubectls_options() -> None:
    args = parse("pause", "vmi", "x", "-n", "ns", "--context", "c", "--kubeconfig", "/k")
    assert (args.kind, args.name, args.namespace, args.context) == ("vmi", "x", "ns", "c")
    assert str(verbs.kubeconfig(args)) == "/k"
