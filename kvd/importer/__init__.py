"""`kvd importer`: CDI's importer, the program a DataVolume's importer pod runs.

It fills one PVC from one source (`source`: http, a containerDisk's files, another claim's disk,
or nothing for blank), checks what it got (`convert`: qemu-img info, no backing files, fits the
volume) and writes a raw image: `disk.img` in a Filesystem volume, or the Block device itself.
While it works it serves its progress as CDI's Prometheus metric on port 8443 (`progress`), which
the DV controller scrapes from the pod IP: the importer holds no API credentials and, on the
local cluster, could not reach the API server anyway. Its outcome is its last log line, one JSON
object (`result`), which the controller reads through the pod's log (as a kubelet's
FallbackToLogsOnError would) — with whether retrying can help.
"""
