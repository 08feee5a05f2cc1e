"""Disk sizes from Kubernetes quantities: whole 512-byte sectors, as a disk must have."""

from __future__ import annotations

from typing import Final

from kvd.api.quantity import Quantity

SECTOR: Final = 512


def disk_bytes(capacity: Quantity) -> int:
    """`capacity` rounded up to a whole sector.

    Rounding up, never down: a user who asks for 1000 bytes gets at least 1000. qemu-img would
    round the same way for qcow2, but a raw file keeps the odd size and QEMU then hides the
    tail; rounding here gives every disk type the same, checkable size.
    """
    size = capacity.bytes()
    return -(-size // SECTOR) * SECTOR
