"""The fixed part of the resolution table: images the local node runs without the store.

kvd's own image (`kvd.version.KVD_IMAGE`, any tag or digest) runs this installation's `kvd`, so
the pods a chart or the controller renders with `ghcr.io/kvd-project/kvd:<version>` run here
unchanged; so do the chart's per-daemon images (`localhost/kvd/kvd-controller` and the like,
what `make images` builds), which `kvd local up` installs. A few tool images run the host's
own binaries: `busybox` (Debian's busybox-static is on every kvd machine) and `kvd.local/host`,
a name for "the host as it is". Nothing else is built in; the store answers for the rest.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kvd.local.images import reference
from kvd.version import KVD_IMAGE

# Repositories (normalized, without tag) that run the host's binaries.
HOST_IMAGES: Final = ("docker.io/library/busybox", "kvd.local/host")


@dataclass(frozen=True)
class KvdImage:
    """kvd's own image: its containers run this installation's `kvd`."""

    reference: str  # normalized

    @property
    def bin_dir(self) -> Path:
        """The directory holding this installation's `kvd` (the venv's bin/): put it on PATH."""
        return Path(sys.executable).parent

    @property
    def installation(self) -> tuple[Path, ...]:
        """The directories this installation's `kvd` runs from: the venv, the interpreter it was
        made from, and the source tree of an editable install (nested ones left out)."""
        import kvd  # noqa: PLC0415 - the package itself, for where it lives

        roots = {
            Path(sys.prefix),
            Path(sys.base_prefix),
            Path(kvd.__file__).resolve().parent.parent,
        }
        return tuple(
            sorted(r for r in roots if not any(o != r and r.is_relative_to(o) for o in roots))
        )


@dataclass(frozen=True)
class HostImage:
    """A generic tool image: its containers run the host's own binaries."""

    reference: str  # normalized


KVD_REPOSITORY: Final = reference.parse(KVD_IMAGE).repository
# The chart's images (`containers/` builds them, `image.registry` in its values): the same kvd,
# one image per daemon.
CHART_REPOSITORIES: Final = tuple(
    f"localhost/kvd/kvd-{daemon}" for daemon in ("controller", "handler", "launcher")
)


def lookup(ref: reference.Reference) -> KvdImage | HostImage | None:
    """The built-in image `ref` names, or None when the store should answer."""
    if ref.repository == KVD_REPOSITORY or ref.repository in CHART_REPOSITORIES:
        return KvdImage(str(ref))
    if ref.repository in HOST_IMAGES:
        return HostImage(str(ref))
    return None
