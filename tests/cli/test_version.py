from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs the installed kvd and kvdctl programs

BIN = Path(sys.executable).parent


def test_version_names_the_installed_release() -> None:
    result = subprocess.run(
        [str(BIN / "kvd"), "version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith(f"kvd {metadata.version('kvd')} (Python ")


def test_kvdctl_version_names_the_client_also_without_a_server(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "kvdctl"), "version", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.startswith(f"Client Version: kvdctl {metadata.version('kvd')} (Python ")
    assert result.returncode == 1 and "is not running" in result.stderr


@pytest.mark.parametrize("program", ["kvd", "kvdctl"])
def test_no_command_is_a_usage_error(program: str) -> None:
    result = subprocess.run(
        [str(BIN / program)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr
