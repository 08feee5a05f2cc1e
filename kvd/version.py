"""kvd's own version, as installed: for `version` commands and the launcher's GetInfo."""

from __future__ import annotations

from importlib import metadata


def kvd_version() -> str:
    try:
        return metadata.version("kvd")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
