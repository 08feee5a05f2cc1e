"""ISO9660 images from an in-memory file tree, written with pycdlib (no genisoimage binary).

Three name spaces carry the same names, so every reader sees `meta-data`, not `META_DAT.;1`:
ISO9660 level 4 (ISO9660:1999, long names with lowercase and `-`), Rock Ridge (what Linux
mounts) and Joliet (what Windows and cloudbase-init read). The volume identifier is what
cloud-init looks for (`blkid LABEL=cidata`), and pycdlib writes it into the Joliet descriptor as
well, which blkid prefers.

The bytes are not reproducible — pycdlib stamps the current time into every record and offers
no way to pin it short of patching the process-wide clock — so identity is defined by content:
`read` gives back the label and files, and callers compare those.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Final

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

INTERCHANGE_LEVEL: Final = 4
JOLIET_LEVEL: Final = 3
ROCK_RIDGE: Final = "1.09"

Files = Mapping[str, bytes]  # "openstack/latest/user_data" → contents


class ISOReadError(Exception):
    """A file that is not an ISO this module could have written."""


def write(path: Path, *, label: str, files: Files) -> None:
    """Write an ISO with `label` holding `files`; parent directories are implied."""
    image = pycdlib.PyCdlib()
    image.new(
        interchange_level=INTERCHANGE_LEVEL,
        vol_ident=label,
        joliet=JOLIET_LEVEL,
        rock_ridge=ROCK_RIDGE,
        app_ident_str="kvd",
    )
    directories = sorted(
        {str(parent) for name in files for parent in PurePosixPath(name).parents} - {"."}
    )
    for directory in directories:  # sorted: a parent comes before its children
        _add(image, directory, data=None)
    for name in sorted(files):
        _add(image, name, data=files[name])
    with path.open("wb") as out:
        image.write_fp(out)
    image.close()


def read(path: Path) -> tuple[str, dict[str, bytes]]:
    """The label and every file of an ISO, by Rock Ridge name."""
    image = pycdlib.PyCdlib()
    try:
        image.open(str(path))
    except PyCdlibException as exc:
        raise ISOReadError(f"{path}: {exc}") from exc
    try:
        label = bytes(image.pvd.volume_identifier).decode("ascii", "replace").rstrip(" ")
        files: dict[str, bytes] = {}
        for directory, _, names in image.walk(rr_path="/"):
            for name in names:
                iso_path = f"{directory.rstrip('/')}/{name}"
                buffer = io.BytesIO()
                image.get_file_from_iso_fp(buffer, rr_path=iso_path)
                files[iso_path.lstrip("/")] = buffer.getvalue()
        return label, files
    except PyCdlibException as exc:
        raise ISOReadError(f"{path}: {exc}") from exc
    finally:
        image.close()


def _add(image: pycdlib.PyCdlib, name: str, *, data: bytes | None) -> None:
    absolute = f"/{name}"
    leaf = PurePosixPath(name).name
    if data is None:
        image.add_directory(iso_path=absolute, rr_name=leaf, joliet_path=absolute)
    else:
        image.add_fp(
            io.BytesIO(data), len(data), iso_path=absolute, rr_name=leaf, joliet_path=absolute
        )
