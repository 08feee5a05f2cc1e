"""The converter's two exceptions: one for the user's spec, one for kvd's own bugs.

`ConversionError` is a `ValueError`: the VMI asks for something the converter cannot express
(EFI where no OVMF is installed, a cdrom on virtio). Its message names the field, because it
travels to the user (INVALID_ARGUMENT, a VMI condition).

`ContextError` is a `LookupError`: the context lacks what the VMI needs (a volume storage did
not prepare, kernel files not extracted). That is the launcher contradicting itself, not the
user's mistake, so it must not be reported as a bad spec.
"""

from __future__ import annotations


class ConversionError(ValueError):
    """A VMI (with its context) that the converter cannot express as a libvirt domain."""


class ContextError(LookupError):
    """The converter context and the VMI disagree: a launcher bug, not bad input."""
