"""`kvdctl console NAME`: the VMI's serial console, interactive, on the local cluster.

The VMI is looked up through the API (for its uid and phase); the console comes from the
node's handler (`HandlerService.Console`, proxied to the VMI's launcher) at the address and
with the token `kvd local up` keeps in its data dir. The terminal is put in raw mode, so keys
reach the guest unchanged; `Ctrl+]` ends the session, as with `virsh console`. On a real cluster
the console goes through the controller's API instead (DESIGN.md §3), which is not there yet.
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

from kvd.api import kinds
from kvd.cli import cluster, program

ESCAPE = b"\x1d"  # Ctrl+]
REPLAY_BYTES = 4096  # enough of the recent output to show the prompt after connecting


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "console",
        help="open a VMI's serial console (local cluster)",
        description="Connects the terminal to the VMI's serial console; Ctrl+] disconnects. "
        "The VM keeps running.",
    )
    parser.add_argument("name", help="the VirtualMachineInstance")
    parser.add_argument("-n", "--namespace", default="default")
    cluster.data_dir_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # grpc, the client and the stubs only for this command
    import grpc  # noqa: PLC0415

    from kvd import rpc_auth  # noqa: PLC0415
    from kvd.kube import client  # noqa: PLC0415
    from kvd.local import cluster as local  # noqa: PLC0415
    from kvd.rpc.handler.v1 import handler_pb2, handler_pb2_grpc  # noqa: PLC0415

    data: Path = args.data_dir.absolute()
    key = f"{args.namespace}/{args.name}"
    # the cluster first: without one, that is what to say, not that a kubeconfig is missing
    address, token = local.handler_address(data), local.handler_token(data)
    try:
        vmi = client.Raw(client.connect(data / "kubeconfig", agent="kvdctl")).get(
            kinds.VMI.path(args.namespace, args.name)
        )
    except client.ApiError as exc:  # e.g. `virtualmachineinstances… "x" not found`
        raise program.CommandError(
            f"{key}: {exc.message if exc.not_found else program.describe(exc)}"
        ) from None
    phase = (vmi.get("status") or {}).get("phase") or "Pending"
    if phase != "Running":
        raise program.CommandError(f"{key} is {phase}, not Running")
    channel = rpc_auth.authorized_channel(grpc.insecure_channel(address), token)
    stub = handler_pb2_grpc.HandlerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
    inputs: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[handler_pb2.ConsoleRequest]:
        yield handler_pb2.ConsoleRequest(
            open=handler_pb2.ConsoleOpen(
                namespace=args.namespace,
                name=args.name,
                uid=vmi["metadata"]["uid"],
                mode=handler_pb2.CONSOLE_MODE_READ_WRITE,
                replay_bytes=REPLAY_BYTES,
            )
        )
        while (chunk := inputs.get()) is not None:
            yield handler_pb2.ConsoleRequest(input=chunk)

    stream = stub.Console(requests())
    try:
        next(stream)  # `opened`, or why the handler or the launcher refused
    except (grpc.RpcError, StopIteration) as exc:
        inputs.put(None)
        channel.close()
        why = exc.details() if isinstance(exc, grpc.Call) else "the console closed at once"
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
