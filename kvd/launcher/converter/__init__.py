"""VMI → libvirt domain XML, pure: imports neither libvirt nor kubernetes nor grpc.

`convert(vmi, ctx)` is the whole interface the domain manager needs; each device area is a
small module (cpu, memory, firmware, disks, interfaces, console, …) tested against golden XML.
`read_metadata` recovers kvd's per-domain state from a defined domain after a restart.
"""

from kvd.launcher.converter.domain import convert, domain_name
from kvd.launcher.converter.errors import ContextError, ConversionError
from kvd.launcher.converter.metadata import (
    METADATA_NAMESPACE,
    METADATA_PREFIX,
    DomainMetadata,
    read_metadata,
    render_metadata,
)

__all__ = [
    "METADATA_NAMESPACE",
    "METADATA_PREFIX",
    "ContextError",
    "ConversionError",
    "DomainMetadata",
    "convert",
    "domain_name",
    "read_metadata",
    "render_metadata",
]
