from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MANIFESTS = Path(__file__).parent / "manifests"


def manifest(name: str) -> Any:
    return yaml.safe_load((MANIFESTS / name).read_text())
