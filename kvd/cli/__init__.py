"""Command-line entry points: `kvd` (daemons, local cluster, tools)."""
