"""The node API alone: logs and exec against real processes in real namespaces (as root)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kvd.local.node import kubelet_api
from tests.local.node.process_pods import ProcessPods, command_running, leftovers
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.integration,  # starts the node API's server and pod processes in namespaces
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)"),
]

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"


@dataclass
class Node:
    pods: ProcessPods
    socket: Path


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    pods = ProcessPods(tmp_path / "pods")
    socket = tmp_path / "node" / "kubelet.sock"
    try:
        with kubelet_api.serve_in_thread(socket, pods):
            yield Node(pods, socket)
        assert not socket.exists(), "the socket outlived the server"
    finally:
        pods.close()
        assert not leftovers(pods.prefix), "network namespaces left behind"


# --- a client of the socket -------------------------------------------------------------------


def get(socket: Path, path: str, **headers: str) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as s,
            s.get(f"http://node{path}", headers=headers) as r,
        ):
            return r.status, await r.read()

    return asyncio.run(go())


@dataclass
class Exec:
    protocol: str | None = None
    channels: dict[int, bytes] = field(default_factory=dict)

    @property
    def status(self) -> dict[str, Any]:
        return json.loads(self.channels[3])

    @property
    def exit_code(self) -> int:
        if self.status["status"] == "Success":
            return 0
        assert self.status["reason"] == "NonZeroExitCode", self.status
        [cause] = self.status["details"]["causes"]
        assert cause["reason"] == "ExitCode"
        return int(cause["message"])

    def out(self, channel: int = 1) -> str:
        return self.channels.get(channel, b"").decode()


def run_exec(
    socket: Path,
    pod: str,
    container: str,
    *command: str,
    protocols: tuple[str, ...] = (V5, V4),
    send: tuple[bytes, ...] = (),
    tty: bool = False,
    stdin: bool = False,
) -> Exec:
    """One exec session: send the given frames (channel byte included), collect the rest."""
    query = [("command", c) for c in command] + [("stdout", "true")]
    query += [("stderr", "true")] if not tty else [("tty", "true")]
    query += [("stdin", "true")] if stdin else []
    url = f"http://node/exec/default/{pod}/{container}?" + "&".join(
        f"{k}={aiohttp.helpers.quote(v, safe='')}" for k, v in query
    )

    async def go() -> Exec:
        result = Exec()
        connector = aiohttp.UnixConnector(path=str(socket))
        async with (
            aiohttp.ClientSession(connector=connector) as s,
            s.ws_connect(url, protocols=protocols) as ws,
        ):
            result.protocol = ws.protocol
            for frame in send:
                await ws.send_bytes(frame)
            async for msg in ws:
                assert msg.type == aiohttp.WSMsgType.BINARY
                channel = msg.data[0]
                result.channels[channel] = result.channels.get(channel, b"") + msg.data[1:]
        return result

    return asyncio.run(asyncio.wait_for(go(), timeout=30))


# --- logs -------------------------------------------------------------------------------------


def test_logs_whole_tail_limit_and_previous(node: Node) -> None:
    node.pods.add_pod("default", "web", address="10.244.7.2/24")
    first = node.pods.start("default", "web", "app", "echo one; echo two")
    first.proc.wait(timeout=10)
    node.pods.start("default", "web", "app", "printf 'a\\nb\\nc'; exec sleep 600", ready="c")
    base = "/containerLogs/default/web/app"
    assert get(node.socket, base) == (200, b"a\nb\nc")
    assert get(node.socket, base + "?tailLines=2") == (200, b"b\nc")
    assert get(node.socket, base + "?tailLines=0") == (200, b"")
    assert get(node.socket, base + "?tailLines=99") == (200, b"a\nb\nc")
    assert get(node.socket, base + "?limitBytes=3") == (200, b"a\nb")
    assert get(node.socket, base + "?previous=true") == (200, b"one\ntwo\n")
    assert get(node.socket, base + "?previous=true&tailLines=1") == (200, b"two\n")


def test_tail_of_a_log_longer_than_one_read(node: Node) -> None:
    node.pods.add_pod("default", "web", address="10.244.7.2/24")
    node.pods.start("default", "web", "app", "seq 1 20000", ready="20000\n")
    status, body = get(node.socket, "/containerLogs/default/web/app?tailLines=3")
    assert (status, body) == (200, b"19998\n19999\n20000\n")


def test_follow_streams_until_the_attempt_ends(node: Node) -> None:
    pod = node.pods.add_pod("default", "web", address="10.244.7.2/24")
    script = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"
    node.pods.start("default", "web", "app", script, ready="first")

    async def follow() -> bytes:
        connector = aiohttp.UnixConnector(path=str(node.socket))
        async with (
            aiohttp.ClientSession(connector=connector) as s,
            s.get("http://node/containerLogs/default/web/app?follow=true") as r,
        ):
            assert r.status == 200
            seen = b""
            while b"first\n" not in seen:
                seen += await r.content.readany()
            (pod.workdir / "go").touch()  # now the container writes again and exits
            return seen + await r.content.read()  # to EOF: the follow must end by itself

    assert asyncio.run(asyncio.wait_for(follow(), timeout=20)) == b"first\nsecond\n"


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        pytest.param(
            "/containerLogs/default/web/app?previous=true",
            400,
            'previous terminated container "app" in pod "web" not found',
            id="no-previous",
        ),
        pytest.param("/containerLogs/default/nope/app", 404, 'pods "nope" not found', id="no-pod"),
        pytest.param(
            "/containerLogs/default/web/app?timestamps=true",
            400,
            "timestamps is not supported",
            id="timestamps",
        ),
        pytest.param(
            "/containerLogs/default/web/app?tailLines=-1",
            400,
            "tailLines must be zero or more",
            id="negative-tail",
        ),
    ],
)
def test_logs_refusals(node: Node, path: str, code: int, message: str) -> None:
    node.pods.add_pod("default", "web", address="10.244.7.2/24")
    node.pods.start("default", "web", "app", "exec sleep 600")
    status, body = get(node.socket, path)
    assert status == code
    assert message in json.loads(body)["message"]


# --- exec -------------------------------------------------------------------------------------


@pytest.fixture
def running(node: Node) -> Node:
    """Pod `web`, container `compute`: in its netns with 10.244.7.2, and a private tmpfs at
    /var/run/libvirt holding a file the host does not have."""
    node.pods.add_pod("default", "web", address="10.244.7.2/24")
    script = (
        # a fresh /run, as a pod has: /run/libvirt need not exist on the host
        "mount -t tmpfs kvdtest /run && mkdir /run/libvirt && "
        f"echo private > /var/run/libvirt/{node.pods.prefix} && echo up && exec sleep 600"
    )
    node.pods.start("default", "web", "compute", script, env={"MARKER": "m-42"}, ready="up")
    return node


def test_exec_runs_in_the_containers_namespaces(running: Node) -> None:
    result = run_exec(running.socket, "web", "compute", "ip", "-o", "addr")
    assert result.protocol == V5
    assert result.exit_code == 0
    assert "10.244.7.2/24" in result.out()

    marker = f"/var/run/libvirt/{running.pods.prefix}"
    assert not Path(marker).exists(), "the host must not see the container's tmpfs"
    result = run_exec(running.socket, "web", "compute", "cat", marker)
    assert (result.out(), result.exit_code) == ("private\n", 0)

    pod_dir = running.pods.pods[("default", "web")].workdir
    result = run_exec(running.socket, "web", "compute", "sh", "-c", "echo $MARKER; pwd; hostname")
    assert result.out().splitlines()[:2] == ["m-42", str(pod_dir)]


def test_exec_exit_codes_and_stderr(running: Node) -> None:
    result = run_exec(running.socket, "web", "compute", "sh", "-c", "echo oops >&2; exit 3")
    assert result.exit_code == 3
    assert result.out(2) == "oops\n"
    assert result.status["message"].endswith("exit code 3")


def test_exec_of_a_missing_program(running: Node) -> None:
    result = run_exec(running.socket, "web", "compute", "no-such-program")
    assert result.exit_code == 127
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.out(2)
    result = run_exec(running.socket, "web", "compute", "/etc/passwd")  # mode 0644
    assert result.exit_code == 126


def test_exec_stdin_closed_by_v5(running: Node) -> None:
    frames = (b"\x00hello ", b"\x00world\n", b"\xff\x00")  # stdin, stdin, close(stdin)
    result = run_exec(running.socket, "web", "compute", "cat", stdin=True, send=frames)
    assert (result.out(), result.exit_code) == ("hello world\n", 0)


def test_exec_v4_is_negotiated_when_asked(running: Node) -> None:
    result = run_exec(running.socket, "web", "compute", "sh", "-c", "exit 5", protocols=(V4,))
    assert (result.protocol, result.exit_code) == (V4, 5)


def test_exec_with_a_tty_and_resize(running: Node) -> None:
    frames = (b'\x04{"Width":100,"Height":40}', b"\x00go\n")
    script = "read x; tty; stty size; echo got-$x; exit 2"
    result = run_exec(
        running.socket, "web", "compute", "sh", "-c", script, tty=True, stdin=True, send=frames
    )
    lines = result.out().replace("\r", "").splitlines()
    assert any(line.startswith("/dev/pts/") for line in lines), lines
    assert "40 100" in lines and "got-go" in lines
    assert 2 not in result.channels, "a tty merges stderr into stdout"
    assert result.exit_code == 2


def test_exec_with_a_tty_starts_at_the_clients_size(running: Node) -> None:
    """kubectl sends the terminal's size just after it connects; a command that reads its size
    at once sees that size, not the pty's 0x0, and input sent before the size is kept."""
    frames = (b"\x00early\n", b'\x04{"Width":111,"Height":33}')
    script = "stty size; read x; echo got-$x"
    result = run_exec(
        running.socket, "web", "compute", "sh", "-c", script, tty=True, stdin=True, send=frames
    )
    lines = result.out().replace("\r", "").splitlines()
    assert "33 111" in lines and "got-early" in lines, lines


def test_exec_with_a_tty_and_no_size_still_runs(running: Node) -> None:
    """A client that never sends a size (the official python client) is not kept waiting."""
    result = run_exec(running.socket, "web", "compute", "sh", "-c", "stty size", tty=True)
    assert result.out().replace("\r", "").splitlines() == ["0 0"]
    assert result.exit_code == 0


def test_exec_is_killed_when_the_client_goes_away(running: Node) -> None:
    seconds = f"{900 + os.getpid() % 97}.{os.getpid()}"  # a unique command line to look for

    def alive() -> bool:
        return command_running("sleep", seconds)

    url = (
        "http://node/exec/default/web/compute?command=sh&command=-c"
        f"&command=echo+started;+exec+sleep+{seconds}&stdout=true"
    )

    async def go() -> None:
        connector = aiohttp.UnixConnector(path=str(running.socket))
        async with (
            aiohttp.ClientSession(connector=connector) as s,
            s.ws_connect(url, protocols=(V5,)) as ws,
        ):
            msg = await ws.receive()
            assert msg.data == b"\x01started\n"
            # the shell prints before it execs sleep: wait (off the loop) until sleep runs
            await asyncio.to_thread(wait_for, "the exec'd sleep to run", alive, timeout=15)
        # closed here, with the command still running

    asyncio.run(asyncio.wait_for(go(), timeout=20))
    wait_for("the exec'd sleep to be killed after the client left", lambda: not alive(), timeout=15)


def test_exec_leaves_no_background_child(running: Node) -> None:
    seconds = f"{700 + os.getpid() % 97}.{os.getpid()}"
    script = f"sleep {seconds} & echo spawned"  # the child keeps stdout open
    result = run_exec(running.socket, "web", "compute", "sh", "-c", script)
    assert (result.out(), result.exit_code) == ("spawned\n", 0)
    wait_for(
        "the background sleep to be killed",
        lambda: not command_running("sleep", seconds),
        timeout=15,
    )


def test_exec_refusals(running: Node) -> None:
    base = "/exec/default/web/compute?command=true&stdout=true"
    status, body = get(running.socket, base)
    assert (status, json.loads(body)["message"]) == (426, "Upgrade request required")
    status, body = get(running.socket, base, Upgrade="SPDY/3.1", Connection="Upgrade")
    assert status == 400 and "not SPDY" in json.loads(body)["message"]
    status, body = get(running.socket, "/exec/default/web/compute?command=true")
    assert status == 400 and "at least 1 of stdin" in json.loads(body)["message"]
    status, body = get(running.socket, "/exec/default/web/other?command=true&stdout=1")
    assert status == 400 and "waiting to start" in json.loads(body)["message"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        run_exec(running.socket, "web", "compute", "true", protocols=("channel.k8s.io",))
    assert refused.value.status == 400
    assert "not supported" in json.loads(refused.value.headers["Kvd-Status"])["message"]


def test_socket_is_private(node: Node) -> None:
    assert stat.S_IMODE(node.socket.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(node.socket.stat().st_mode)
