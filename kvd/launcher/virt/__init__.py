"""Everything in the launcher that calls libvirt: the connection and its event loop, the
domain manager, the private daemon. Nothing outside this package imports `libvirt`."""
