"""`kvdctl console NAME`: the VMI's serial console, interactive, as `virtctl console`.

With nothing but the user's kubeconfig: a websocket (subprotocol `plain.kubevirt.io`) to
`subresources.kubevirt.io/v1/.../virtualmachineinstances/NAME/console` through the API server,
which proxies it to kvd's controller, which authorizes the user for
`virtualmachineinstances/console` and proxies on to the VMI's node. A refusal is one line, the
server's (`User "bob" cannot get virtualmachineinstances/console …`). A VMI that does not run
yet is waited for, up to `--timeout` minutes (virtctl's default: 5). The terminal is put in raw
mode, so keys reach the guest unchanged; `Ctrl+]` ends the session and the VM keeps running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from typing import Any

from kvd.cli import program, verbs

ESCAPE = b"\x1d"  # Ctrl+]
REPLAY_BYTES = 4096  # enough of the recent output to show the prompt after connecting
RETRY = 2.0  # seconds between attempts while the VMI is not running yet
WAITING = (409, 503)  # not running yet, its node not reachable yet


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "console",
        help="open a VMI's serial console",
        description="Connects the terminal to the VMI's serial console through the API server "
        "(subresources.kubevirt.io), as the kubeconfig's user (who needs `get` on "
        "virtualmachineinstances/console); Ctrl+] disconnects. The VM keeps running.",
    )
    parser.add_argument("name", help="the VirtualMachineInstance")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="minutes to wait for a VMI that is not running yet (default 5; 0: do not wait)",
    )
    verbs.user_options(parser)
    parser.set_defaults(run=run)


def wait_running(api: Any, ns: str, name: str, *, minutes: float) -> None:
    """Until the VMI (read as the user) is Running, or a one-line error saying what it is.

    Read first rather than learnt from a refused upgrade: a proxy in between may not pass the
    controller's reason on, and the user deserves `not found` or `Scheduled, not Running`."""
    from kvd.api import kinds  # noqa: PLC0415
    from kvd.kube import client  # noqa: PLC0415

    deadline = time.monotonic() + max(0.0, minutes) * 60
    said = False
    while True:
        try:
            vmi = client.Raw(api).get(kinds.VMI.path(ns, name))
        except client.ApiError as exc:
            raise verbs.refused(exc) from None
        phase = (vmi.get("status") or {}).get("phase") or "Pending"
        if phase == "Running":
            return
        if phase in ("Succeeded", "Failed") or time.monotonic() + RETRY > deadline:
            raise program.CommandError(
                f"VirtualMachineInstance {ns}/{name} is {phase}, not Running"
            )
        if not said:
            print(f"Waiting for {ns}/{name} to run (it is {phase})", file=sys.stderr, flush=True)
            said = True
        time.sleep(RETRY)


def open_console(args: argparse.Namespace, api: Any, ns: str) -> Any:
    """The console's websocket, once the VMI runs (or why not, when `--timeout` is over)."""
    from kvd.kube import client, subresources  # noqa: PLC0415 - the client only for this

    wait_running(api, ns, args.name, minutes=args.timeout)
    where = subresources.path(ns, verbs.VMI, args.name, "console")
    deadline = time.monotonic() + max(0.0, args.timeout) * 60
    while True:
        try:
            return subresources.open_stream(api, where, query={"replayBytes": str(REPLAY_BYTES)})
        except client.ApiError as exc:
            if exc.status not in WAITING or time.monotonic() + RETRY > deadline:
                raise verbs.refused(exc) from None
            time.sleep(RETRY)  # it was Running a moment ago: its node is catching up


def run(args: argparse.Namespace) -> int:
    import websocket  # noqa: PLC0415

    api, ns = verbs.connect(args)
    ws = open_console(args, api, ns)
    print(
        f"Successfully connected to {args.name} console. The escape sequence is ^]\r",
        file=sys.stderr,
        flush=True,
    )
    ended = threading.Event()
    threading.Thread(target=_read_keys, args=(ws, ended), daemon=True).start()
    code = 0
    with _raw_terminal():
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = _closed(data, ended)
                    break
                if data:
                    os.write(sys.stdout.fileno(), data)
        except (OSError, websocket.WebSocketException) as exc:
            if not ended.is_set():
                print(f"\r\nkvdctl console: {exc}\r", file=sys.stderr)
                code = 1
    with contextlib.suppress(OSError, websocket.WebSocketException):
        ws.close()
    print("\r\nDisconnected.", file=sys.stderr)
    return code


def _closed(data: bytes, ended: threading.Event) -> int:
    """The exit status for the server's close frame: its reason is said when it is a failure."""
    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1000
    if code in (1000, 1001) or ended.is_set():
        return 0
    reason = data[2:].decode(errors="replace") or f"closed with code {code}"
    print(f"\r\nkvdctl console: {reason}\r", file=sys.stderr)
    return 1


def _read_keys(ws: Any, ended: threading.Event) -> None:
    """Stdin to the console until Ctrl+] (or end of input), then ask the server to close (the
    reader sees its close frame and ends the session)."""
    fd = sys.stdin.fileno()
    try:
        while True:
            chunk = os.read(fd, 1024)
            if not chunk or ESCAPE in chunk:
                before = chunk.split(ESCAPE, 1)[0] if chunk else b""
                if before:
                    ws.send_binary(before)
                break
            ws.send_binary(chunk)
    except Exception:
        pass
    ended.set()
    with contextlib.suppress(Exception):
        ws.send_close()


@contextlib.contextmanager
def _raw_terminal() -> Iterator[None]:
    """Raw mode on a terminal stdin (keys go through unchanged), restored after; else nothing."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
