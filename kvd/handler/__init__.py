"""kvd handler (one per node): drives launchers over gRPC and owns the running phases."""
