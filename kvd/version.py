"""kvd's own version and image name, as installed: for `version` commands, GetInfo and pod specs."""

from __future__ import annotations

from importlib import metadata
from typing import Final

# kvd's container image, without a tag. Every daemon runs from it (`kvd controller|handler|
# launcher`); the local cluster maps it, with any tag, to this installation's `kvd`.
KVD_IMAGE: Final = "ghcr.io/kvd-project/kvd"


def kvd_version() -> str:
    try:
        return metadata.version("kvd")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def kvd_image() -> str:
    """KVD_IMAGE tagged with this version (a tag cannot hold PEP 440's `+`)."""
    return f"{KVD_IMAGE}:{kvd_version().replace('+', '_')}"
