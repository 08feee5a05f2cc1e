"""Real `kubectl` (the venv's static binary) against a local API server's kubeconfig."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def run(
    kubeconfig: Path,
    home: Path,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """kubectl with `KUBECONFIG` set and a private HOME (its discovery cache); failures raise
    AssertionError with kubectl's output unless `check` is false."""
    env = {**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
    done = subprocess.run(
        [KUBECTL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}\n{done.stdout}"
        )
    return done
