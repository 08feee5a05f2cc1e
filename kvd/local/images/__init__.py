"""Container images for the local node, which never pulls: a reference resolves through a table.

| reference (normalized, any tag or digest)   | resolves to  | what runs                          |
|---------------------------------------------|--------------|------------------------------------|
| `ghcr.io/kvd-project/kvd` (kvd.version)     | `KvdImage`   | this installation's `kvd`          |
| `busybox`, `kvd.local/host`                 | `HostImage`  | the host's own binaries            |
| anything in the local image store           | `StoredImage`| its files: containerDisk disk/, or |
|                                             |              | kernel-boot boot/vmlinuz, initrd   |
| anything else                               | ImageNotFound, whose message says how to import |

References are normalized as docker does (`kvd-demo` is `docker.io/library/kvd-demo:latest`).
The store is filled by `kvd image import` (kvd.cli.image); `scripts/setup` imports the demo
guest as `kvd-demo` (disk) and `kvd-demo-kernel` (kernel boot). See `store` for its layout.
"""

from kvd.local.images.reference import ImageError, familiar, normalize
from kvd.local.images.store import DEFAULT_ROOT, ImageNotFound, ImageStore, StoredImage
from kvd.local.images.table import HOST_IMAGES, HostImage, KvdImage

Resolved = StoredImage | KvdImage | HostImage
"""What a container image reference stands for on the local node."""

__all__ = [
    "DEFAULT_ROOT",
    "HOST_IMAGES",
    "HostImage",
    "ImageError",
    "ImageNotFound",
    "ImageStore",
    "KvdImage",
    "Resolved",
    "StoredImage",
    "familiar",
    "normalize",
]
