"""The debugging recipes for a running VMI's launcher pod work as written, with nothing installed
by hand: `kubectl exec <pod> -c compute -- brctl show | virsh list | ip -o link`."""

from __future__ import annotations

import secrets

import pytest

from kvd.launcher.network import links
from tests.e2e.conftest import E2E, vmi_manifest

pytestmark = pytest.mark.integration


def bridges(brctl_show: str) -> dict[str, list[str]]:
    """`brctl show` as bridge → its interfaces (a bridge's further interfaces are on lines of
    their own, indented)."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in brctl_show.splitlines()[1:]:  # after the header
        fields = line.split()
        if not fields:
            continue
        if not line[0].isspace():
            current = found.setdefault(fields[0], [])
            current.extend(fields[3:4])  # name, id, STP, then the first interface if any
        else:
            current.append(fields[0])
    return found


def test_brctl_virsh_and_ip_in_the_compute_container(e2e: E2E) -> None:
    e2e.apply(vmi_manifest("debug", marker=f"dbg-{secrets.token_hex(4)}"))
    vmi = e2e.wait_vmi("debug", "Running")
    [pod] = e2e.pods_of(vmi)
    name = pod["metadata"]["name"]

    def run(*command: str) -> str:
        done = e2e.kubectl("exec", name, "-c", "compute", "--", *command, check=False)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
        return str(done.stdout)

    shown = run("brctl", "show")
    assert sorted(bridges(shown).get(links.BRIDGE, [])) == sorted(["eth0", links.TAP]), shown

    assert run("virsh", "--version").strip()[0].isdigit()
    # LIBVIRT_DEFAULT_URI in the container's environment points virsh at the launcher's daemon
    listed = run("virsh", "list")
    assert "default_debug" in listed and "running" in listed, listed

    link_names = {
        line.split(":")[1].strip().split("@")[0] for line in run("ip", "-o", "link").splitlines()
    }
    assert {"eth0", links.BRIDGE, links.TAP} <= link_names, link_names

    e2e.kubectl("delete", "vmi", "debug")
    assert e2e.vmi("debug") is None
