"""`kvdctl console NAME`: the VMI's serial console, interactive.

With nothing but the user's kubeconfig, as `virtctl console`: the VMI is looked up through the
API as the user (its phase), then the console comes from the controller's ControllerService
(which authorizes the user for `virtualmachineinstances/console` and proxies to the VMI's node),
over TLS verified with the kubeconfig's CA, with the kubeconfig's bearer token. The
controller's address is `--address`, or, on the local cluster, the one its address file in the
data dir names. A refusal is one line, the controller's (`User "alice" cannot get …`). The
terminal is put in raw mode, so keys reach the guest unchanged; `Ctrl+]` ends the session, as
with `virsh console`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kvd.api import kinds
from kvd.cli import cluster, program

ESCAPE = b"\x1d"  # Ctrl+]
REPLAY_BYTES = 4096  # enough of the recent output to show the prompt after connecting


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "console",
        help="open a VMI's serial console",
        description="Connects the terminal to the VMI's serial console through the kvd "
        "controller, as the kubeconfig's user (who needs `get` on "
        "virtualmachineinstances/console in subresources.kubevirt.io); Ctrl+] disconnects. "
        "The VM keeps running.",
    )
    parser.add_argument("name", help="the VirtualMachineInstance")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="default: $KUBECONFIG, else the local cluster's (DATA_DIR/kubeconfig)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="the controller's ControllerService; default: the local cluster's, from its data dir",
    )
    cluster.data_dir_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # grpc, the client and the stubs only for this command
    import grpc  # noqa: PLC0415

    from kvd import rpc_auth  # noqa: PLC0415
    from kvd.kube import client  # noqa: PLC0415
    from kvd.local import cluster as local  # noqa: PLC0415
    from kvd.rpc.controller.v1 import controller_pb2, controller_pb2_grpc  # noqa: PLC0415

    data: Path = args.data_dir.absolute()
    key = f"{args.namespace}/{args.name}"
    # the cluster first: without one, that is what to say, not that a kubeconfig is missing
    address = args.address or local.controller_address(data)
    api, token = _running_as_user(args, data)
    credentials = grpc.ssl_channel_credentials(root_certificates=client.ca_bundle(api))
    channel = rpc_auth.authorized_channel(grpc.secure_channel(address, credentials), token)
    stub = controller_pb2_grpc.ControllerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
    inputs: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[controller_pb2.ConsoleRequest]:
        yield controller_pb2.ConsoleRequest(
            open=controller_pb2.ConsoleOpen(
                namespace=args.namespace,
                name=args.name,
                mode=controller_pb2.CONSOLE_MODE_READ_WRITE,
                replay_bytes=REPLAY_BYTES,
            )
        )
        while (chunk := inputs.get()) is not None:
            yield controller_pb2.ConsoleRequest(input=chunk)

    stream = stub.Console(requests())
    try:
        next(stream)  # `opened`, or why the controller, the handler or the launcher refused
    except (grpc.RpcError, StopIteration) as exc:
        inputs.put(None)
        channel.close()
        why = exc.details() if isinstance(exc, grpc.Call) else "the console closed at once"
        if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            raise program.CommandError(why) from None  # it names the user, verb and namespace
        raise program.CommandError(f"{key}: {why}") from None
    print(f"Connected to {key}; Ctrl+] disconnects.\r", file=sys.stderr, flush=True)
    ended = threading.Event()
    threading.Thread(target=_read_keys, args=(inputs, ended, stream.cancel), daemon=True).start()
    code = 0
    with _raw_terminal():
        try:
            for message in stream:
                if message.output:
                    os.write(sys.stdout.fileno(), message.output)
        except grpc.RpcError as exc:
            if not ended.is_set():
                details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                print(f"\r\nkvdctl console: {details}\r", file=sys.stderr)
                code = 1
    inputs.put(None)
    channel.close()
    print("\r\nDisconnected.", file=sys.stderr)
    return code


def _running_as_user(args: argparse.Namespace, data: Path) -> tuple[Any, str]:
    """The user's API client and bearer token, once the VMI is seen Running (as the user)."""
    from kvd.kube import client  # noqa: PLC0415

    key = f"{args.namespace}/{args.name}"
    api = client.connect(_kubeconfig(args, data), agent="kvdctl")
    token = client.bearer_token(api)
    if token is None:
        raise program.CommandError(
            "the kubeconfig's user has no bearer token (token or tokenFile): the console needs one"
        )
    try:
        vmi = client.Raw(api).get(kinds.VMI.path(args.namespace, args.name))
    except client.ApiError as exc:  # e.g. `virtualmachineinstances… "x" not found`
        raise program.CommandError(
            f"{key}: {exc.message if exc.not_found else program.describe(exc)}"
        ) from None
    phase = (vmi.get("status") or {}).get("phase") or "Pending"
    if phase != "Running":
        raise program.CommandError(f"{key} is {phase}, not Running")
    return api, token


def _kubeconfig(args: argparse.Namespace, data: Path) -> Path:
    if args.kubeconfig is not None:
        return Path(args.kubeconfig)
    found = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(found) if found else data / "kubeconfig"


def _read_keys(
    inputs: queue.Queue[bytes | None], ended: threading.Event, cancel: Callable[[], object]
) -> None:
    """Stdin to the console until Ctrl+] (or end of input), then end the stream."""
    fd = sys.stdin.fileno()
    while True:
        chunk = os.read(fd, 1024)
        if not chunk or ESCAPE in chunk:
            before = chunk.split(ESCAPE, 1)[0] if chunk else b""
            if before:
                inputs.put(before)
            ended.set()
            inputs.put(None)
            cancel()
            return
        inputs.put(chunk)


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
