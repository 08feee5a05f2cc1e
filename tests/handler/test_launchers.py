"""The handler's launcher client (kvd.handler.launchers) against a launcher that starts late:
the handler follows a VMI's launcher from the moment the VMI is scheduled, seconds before the
launcher's socket appears on a loaded node. A gRPC channel whose connection failed backs off
(1 s, then longer) and fails every call meanwhile, so the follower must not try a socket that
is not there, and the first call once the launcher serves must be answered."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from kvd.handler.launchers import Launcher
from kvd.rpc.launcher.v1 import domain_pb2
from tests.handler.standin import StandIn, serve
from tests.support.waiting import holds_for, wait_for


def test_a_launcher_followed_before_its_socket_exists_answers_its_first_call(
    tmp_path: Path,
) -> None:
    socket = tmp_path / "launcher.sock"
    launcher = Launcher(socket)
    seen: list[domain_pb2.Domain | None] = []
    stop = threading.Event()
    states: list[grpc.ChannelConnectivity] = []
    launcher._channel.subscribe(states.append)  # what the channel goes through
    launcher.follow(seen.append, stop)
    server = None
    try:
        # a follower tries at once and then every 0.1-2 s: two seconds would see its failures
        holds_for(
            "no connection attempt while there is no socket",
            lambda: grpc.ChannelConnectivity.TRANSIENT_FAILURE not in states,
            2.0,
        )
        server = serve(StandIn("uid"), socket)
        assert launcher.negotiate().version == 1  # the first call: answered
        wait_for("the follower's first domain", lambda: seen)
        assert seen[0] is None  # none defined yet
    finally:
        stop.set()
        launcher.close()
        if server is not None:
            server.stop(grace=None)
