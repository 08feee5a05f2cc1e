"""kvd launcher (one per VMI): a private libvirtd, the VMI → domain converter, LauncherService."""
