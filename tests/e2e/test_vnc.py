"""`kvdctl vnc --proxy-only`: a local port for any VNC viewer, through the API server's
aggregated `subresources.kubevirt.io` (websocket `plain.kubevirt.io`), the controller, the
node's handler and the launcher's VNC socket. A real VNC client, vncdotool, takes a screenshot
of the guest's screen."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import E2E, vmi_manifest
from tests.e2e.test_console import KVDCTL

pytestmark = pytest.mark.integration
VNCDO = str(Path(sys.executable).with_name("vncdo"))


def framebuffer_size(port: int) -> tuple[int, int]:
    """The display's size, from RFB 3.8's ServerInit (security None, shared)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        assert reader.read(12).startswith(b"RFB 003."), "no RFB banner"
        sock.sendall(b"RFB 003.008\n")
        types = reader.read(reader.read(1)[0])
        assert 1 in types, f"security type None not offered: {list(types)}"
        sock.sendall(b"\x01")
        assert struct.unpack("!I", reader.read(4))[0] == 0, "security handshake failed"
        sock.sendall(b"\x01")  # ClientInit: shared
        width, height = struct.unpack("!HH", reader.read(4))
        return width, height


def test_a_vnc_viewer_gets_the_guests_screen(e2e: E2E, tmp_path: Path) -> None:
    e2e.apply(vmi_manifest("screen", marker="screen-booted"))
    e2e.wait_vmi("screen", "Running")
    proxy = subprocess.Popen(
        [KVDCTL, "vnc", "screen", "--proxy-only", "--data-dir", str(e2e.cluster.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        port = json.loads(proxy.stdout.readline())["port"]
        size = framebuffer_size(port)
        assert size > (0, 0)
        shot = tmp_path / "screen.png"
        # the guest draws its console on the screen once it boots: capture until it shows more
        # than one colour
        deadline = time.monotonic() + 120
        while True:
            subprocess.run(
                [VNCDO, "-s", f"127.0.0.1::{port}", "capture", str(shot)], check=True, timeout=60
            )
            with Image.open(shot) as image:
                shot_size, colours = image.size, image.convert("L").getextrema()
            if colours[0] != colours[1] or time.monotonic() > deadline:
                break
        assert shot_size == size
        assert colours[0] != colours[1], "the screenshot is blank"
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
    e2e.kubectl("delete", "vmi", "screen")
