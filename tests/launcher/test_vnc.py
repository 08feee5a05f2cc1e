"""LauncherService.Vnc end to end: a real launcher, libvirtd and QEMU (TCG), real gRPC.

One launcher serves every check, in the order a domain lives: no domain (NOT_FOUND), a domain
without a display (FAILED_PRECONDITION naming autoattachGraphicsDevice), one with a display
that does not run yet, then the running guest: the VNC socket's place and permissions, RFB
through the stream, two clients at once, each way of ending, and no file descriptor or thread
left behind by a session.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kvd.rpc.launcher.v1 import launcher_pb2
from tests.launcher.harness import RPC_TIMEOUT, Console, Launcher
from tests.support import rfb
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def launcher(tmp_path: Path, guest_dir: Path) -> Iterator[Launcher]:
    made = Launcher(tmp_path / "vnc", guest_dir)
    try:
        yield made.start()
    finally:
        made.close()


def _vnc(launcher: Launcher) -> rfb.GrpcVnc:
    return rfb.GrpcVnc(launcher.stub.Vnc, lambda data: launcher_pb2.VncRequest(data=data))


def _refusal(launcher: Launcher) -> grpc.RpcError:
    error = _vnc(launcher).wait_ended()
    assert error is not None, "Vnc should have been refused"
    return error


def _resources(pid: int) -> tuple[int, int]:
    """(open file descriptors, threads) of a process."""
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def test_vnc_from_no_domain_to_a_shared_display_with_nothing_leaked(launcher: Launcher) -> None:
    error = _refusal(launcher)
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()

    manifest = launcher.manifest()
    manifest["spec"]["domain"]["devices"]["autoattachGraphicsDevice"] = False
    launcher.define(manifest)
    error = _refusal(launcher)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "autoattachGraphicsDevice" in (error.details() or "")

    defined = launcher.define(launcher.manifest())
    assert "<graphics type='vnc'" in defined.domain_xml
    assert "port=" not in defined.domain_xml.split("<graphics", 1)[1].split("</graphics>")[0]
    error = _refusal(launcher)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not run" in (error.details() or "")

    launcher.stub.LaunchDomain(
        launcher_pb2.LaunchDomainRequest(vmi_uid=launcher.uid), timeout=RPC_TIMEOUT
    )
    Console(launcher.stub).wait_for("KVD-GUEST-BOOTED")

    # QEMU's own directory: its user's, 0700; the socket in it is reachable by QEMU and root only
    vnc_dir = launcher.run_dir / "vnc"
    st = vnc_dir.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam("libvirt-qemu").pw_uid, 0o700)
    assert stat.S_ISSOCK((vnc_dir / "vnc.sock").stat().st_mode)

    # two clients at once, both shared: each gets its own RFB conversation and the same screen
    first, second = _vnc(launcher), _vnc(launcher)
    one, two = rfb.handshake(first), rfb.handshake(second)
    assert (one.width, one.height) == (two.width, two.height) == launcher.screen_size()
    assert not first.ended.is_set() and not second.ended.is_set()

    # the client's half-close ends its stream with OK; a cancel ends the other
    first.half_close()
    assert first.wait_ended() is None
    second.cancel()
    error = second.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.CANCELLED

    # Sessions leave nothing behind: after a first round (the server's thread pool grows to
    # what a round needs), each further round ends with as many fds and threads as it began.
    assert launcher.proc is not None
    pid = launcher.proc.pid

    def round_of_sessions() -> None:
        pipes = [_vnc(launcher) for _ in range(3)]
        for pipe in pipes:
            rfb.handshake(pipe)
        pipes[0].half_close()
        pipes[1].cancel()
        pipes[2].send(b"\x99")  # not an RFB message: QEMU hangs up, which ends the stream
        for pipe in pipes:
            pipe.wait_ended()

    round_of_sessions()
    baseline = _resources(pid)
    for _ in range(2):
        round_of_sessions()
        wait_for(
            f"the launcher back at {baseline} (fds, threads)",
            lambda: _resources(pid) <= baseline,
        )

    # QEMU's share policy is its default, allow-exclusive: a client asking for the display to
    # itself disconnects the others (their streams end OK), as RFB says
    shared = _vnc(launcher)
    rfb.handshake(shared)
    exclusive = _vnc(launcher)
    rfb.handshake(exclusive, shared=False)
    assert shared.wait_ended() is None
    exclusive.half_close()
    assert exclusive.wait_ended() is None

    # the domain stops: an open stream ends with OK
    last = _vnc(launcher)
    rfb.handshake(last)
    launcher.stub.KillDomain(
        launcher_pb2.KillDomainRequest(vmi_uid=launcher.uid), timeout=RPC_TIMEOUT
    )
    assert last.wait_ended() is None
