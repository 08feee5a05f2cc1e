from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs the installed kvd and kvdctl programs

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("program", ["kvd", "kvdctl"])
def test_version_names_the_installed_release(program: str) -> None:
    result = subprocess.run(
        [str(BIN / program), "version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith(f"{program} {metadata.version('kvd')} (Python ")


@pytest.mark.parametrize("program", ["kvd", "kvdctl"])
def test_no_command_is_a_usage_error(program: str) -> None:
    result = subprocess.run(
        [str(BIN / program)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr
