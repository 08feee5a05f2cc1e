"""`kvdctl vnc NAME`: the VMI's display, for any VNC viewer, as `virtctl vnc`.

A local TCP port (`kvd.portforward.Bridge`, on 127.0.0.1) whose every connection opens a
websocket (subprotocol `plain.kubevirt.io`) to `.../virtualmachineinstances/NAME/vnc` through the
API server, as the kubeconfig's user (who needs `get` on `virtualmachineinstances/vnc`); RFB
bytes flow unchanged both ways. `--proxy-only` prints the port (`{"port": N}`, as virtctl) and
serves until interrupted; otherwise a viewer found on PATH (remote-viewer, vncviewer, …) is
started on it, and the command ends with the viewer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from kvd.cli import console, program, verbs

# viewer → its arguments for 127.0.0.1:PORT
VIEWERS = {
    "remote-viewer": lambda port: [f"vnc://127.0.0.1:{port}"],
    "vncviewer": lambda port: [f"127.0.0.1::{port}"],
    "xtightvncviewer": lambda port: [f"127.0.0.1::{port}"],
    "gvncviewer": lambda port: [f"127.0.0.1::{port}"],
}


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "vnc",
        help="open a VMI's VNC display",
        description="Serves the VMI's VNC display on a local port, through the API server "
        "(subresources.kubevirt.io), and starts a VNC viewer on it (or, with --proxy-only, "
        "prints the port for one).",
    )
    parser.add_argument("name", help="the VirtualMachineInstance")
    parser.add_argument(
        "--proxy-only", action="store_true", help='print {"port": N} and serve until Ctrl+C'
    )
    parser.add_argument("--port", type=int, default=0, help="the local port (default: any)")
    verbs.user_options(parser)
    parser.set_defaults(run=run)


class WebsocketStream:
    """One VNC connection's websocket as a `portforward.Stream`: the local client's bytes go
    out as binary messages (on a thread of its own), the server's come back."""

    def __init__(self, ws: Any, requests: Iterator[bytes]) -> None:
        self._ws = ws
        self._sender = threading.Thread(target=self._send, args=(requests,), daemon=True)
        self._sender.start()

    def _send(self, requests: Iterator[bytes]) -> None:
        with contextlib.suppress(Exception):  # the websocket closed: the reader ends too
            for data in requests:
                self._ws.send_binary(data)
        self.cancel()

    def __iter__(self) -> Iterator[bytes]:
        import websocket  # noqa: PLC0415

        with contextlib.suppress(OSError, websocket.WebSocketException):
            while True:
                opcode, data = self._ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return
                yield data

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close(timeout=1)


def run(args: argparse.Namespace) -> int:
    from kvd import portforward  # noqa: PLC0415
    from kvd.kube import client, subresources  # noqa: PLC0415

    api, ns = verbs.connect(args)
    console.wait_running(api, ns, args.name, minutes=0)
    where = subresources.path(ns, verbs.VMI, args.name, "vnc")
    viewer = None if args.proxy_only else _viewer()
    try:  # the first connection now: a refusal is said here, not in a viewer's dialog
        subresources.open_stream(api, where).close()
    except client.ApiError as exc:
        raise verbs.refused(exc) from None
    failures: list[str] = []

    def open_stream(requests: Iterator[bytes]) -> WebsocketStream:
        return WebsocketStream(subresources.open_stream(api, where), requests)

    def on_error(exc: BaseException) -> None:
        failures.append(str(exc))
        print(f"kvdctl vnc: {exc}", file=sys.stderr, flush=True)

    with portforward.Bridge(open_stream, port=args.port, on_error=on_error) as bridge:
        if viewer is None:
            print(json.dumps({"port": bridge.port}), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
            return 0
        name, argv = viewer
        print(f"kvdctl vnc: {name} on 127.0.0.1:{bridge.port}", file=sys.stderr, flush=True)
        return subprocess.call([name, *argv(bridge.port)])


def _viewer() -> tuple[str, Any]:
    for name, argv in VIEWERS.items():
        if shutil.which(name):
            return name, argv
    raise program.CommandError(
        f"no VNC viewer found on PATH (looked for {', '.join(VIEWERS)}): install one, or use "
        "--proxy-only and point any viewer at the port it prints"
    )
