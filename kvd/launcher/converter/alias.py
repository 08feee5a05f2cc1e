"""User aliases (`<alias name='ua-…'/>`) that tie libvirt devices back to spec names.

libvirt keeps aliases that start with `ua-` as given and reports them in device events and
in `dumpxml`, so the domain manager can say "disk `rootdisk`" where libvirt says `ua-rootdisk`.
Spec names are DNS labels, which are valid alias characters.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "ua-"


def user_alias(spec_name: str) -> str:
    return PREFIX + spec_name


def spec_name(alias: str) -> str | None:
    """The spec name behind a libvirt alias, or None for libvirt's own (`virtio-disk0`)."""
    return alias[len(PREFIX) :] if alias.startswith(PREFIX) else None
