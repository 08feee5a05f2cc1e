"""One `kubectl exec`: a command run inside a container's namespaces, streamed over a WebSocket.

The wire protocol is Kubernetes' channel protocol as kubectl (≥ 1.30, KEP 4006) speaks it:
binary messages whose first byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 error (one
`metav1.Status` at the end: Success, or Failure with reason `NonZeroExitCode` and the exit code
as the `ExitCode` cause, which kubectl turns into its own exit code), 4 resize
(`{"Width":…,"Height":…}`). `v5.channel.k8s.io` adds a close signal (channel 255, then the stream
id), with which kubectl says stdin has ended; `v4.channel.k8s.io` is the same without it.

The command runs as `nsenter --target <pid> --mount --uts --ipc --net --root --wd` (plus
`--pid` when the container has its own pid namespace), so it sees the container's network, its
private mounts, its root and working directory; its environment is the container process's
(/proc/<pid>/environ). With a tty it gets a pty as its controlling terminal (`setsid --ctty`),
stderr merged into stdout; otherwise pipes. The executable is looked up before anything runs,
in the container's PATH and root, so a missing one is reported as runc does (exit 127, or 126 when
not executable) instead of as nsenter's own failure. The process group is killed when the client
goes away; after the command exits, output still held open by a background child is read for
`DRAIN_SECONDS`, then that child is killed too, so a session leaves nothing running behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import termios
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, hdrs, web

from kvd import logs, priority

log = logs.get_logger(__name__)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHUNK = 32 * 1024
DRAIN_SECONDS = 1.0
# With a tty, kubectl sends the terminal's size as its first message; the command starts once it
# has come (or after this long), so that what it reads at once (`stty size`, a full-screen
# program's first frame) is the real size and not the pty's 0x0. Docker and podman had that race.
INITIAL_SIZE_SECONDS = 1.0
STDIN_BUFFER = 1024 * 1024  # bytes of stdin kept for a command that is not reading it yet
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SPDY_MESSAGE = (
    "kvd's local node serves exec over WebSocket only (v5.channel.k8s.io), not SPDY: use "
    "kubectl 1.30 or newer, and do not set KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"
)


@dataclass(frozen=True)
class ExecOptions:
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ExecOptions:
        """kubectl's names (stdin, stdout, stderr) and the kubelet's (input, output, error)."""
        getall = getattr(query, "getall", None)
        command = tuple(getall("command", ())) if getall else ()

        def flag(*names: str) -> bool:
            return any(str(query.get(n, "")).lower() in ("1", "true") for n in names)

        if not command:
            raise ValueError("you must specify at least one command for the container")
        options = cls(
            command=command,
            stdin=flag("stdin", "input"),
            stdout=flag("stdout", "output"),
            stderr=flag("stderr", "error"),
            tty=flag("tty"),
        )
        if not (options.stdin or options.stdout or options.stderr):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        return options


def offered_protocols(request: web.Request) -> list[str]:
    """The channel protocols this node speaks among those the client asked for."""
    asked = [p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",")]
    return [p for p in asked if p in PROTOCOLS]


async def run(
    request: web.Request, *, pid: int, options: ExecOptions, name: str
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    session = _Session(request, ws, options)
    try:
        status = await session.execute(pid, name)
    except ConnectionError:
        status = None
    except Exception as exc:  # reported to the client as the kubelet reports a runtime failure
        log.exception("exec_failed", container=name)
        message = f"error executing command in container: {exc}"
        status = {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {message}",
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }
    try:
        if status is None:
            log.info("exec_client_gone", container=name)
        else:
            await session.send(ERROR, json.dumps(status).encode())
    except ConnectionError:
        log.info("exec_client_gone", container=name)
    finally:
        await ws.close()
    return ws


class _Session:
    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, options: ExecOptions
    ) -> None:
        self.request = request
        self.ws = ws
        self.options = options
        self.v5 = ws.ws_protocol == V5
        self._send_lock = asyncio.Lock()
        self._stdin: asyncio.StreamWriter | None = None
        self._pty: int | None = None
        self._initial_size: bytes | None = None  # the client's first resize, before the command
        self._early: list[Any] = []  # what the client sent while that was awaited
        self._transports: list[asyncio.BaseTransport] = []  # ours, all closed at the end

    async def send(self, channel: int, data: bytes) -> None:
        async with self._send_lock:
            await self.ws.send_bytes(bytes((channel,)) + data)

    async def execute(self, pid: int, name: str) -> dict[str, Any] | None:
        """Run the command to its end; its Status, or None when the client went away first."""
        env = _environment(pid, tty=self.options.tty)
        argv0 = self.options.command[0]
        found = _lookup(pid, argv0, env.get(b"PATH", DEFAULT_PATH.encode()).decode())
        if isinstance(found, _NotRunnable):
            await self.send(STDOUT if self.options.tty else STDERR, found.message.encode() + b"\n")
            return _exit_status(self.options.command, found.code)
        argv = [*_nsenter(pid), "--", found, *self.options.command[1:]]
        if self.options.tty and not await self._await_initial_size():
            return None
        log.info("exec_started", container=name, command=list(self.options.command))
        proc, outputs = await self._spawn(argv, env)
        receiver = asyncio.create_task(self._receive())
        exited = asyncio.create_task(proc.wait())
        pumps = [asyncio.create_task(self._pump(reader, channel)) for reader, channel in outputs]
        try:
            await asyncio.wait({receiver, exited}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                return None
            _, pending = await asyncio.wait(pumps, timeout=DRAIN_SECONDS) if pumps else ((), ())
            if pending:  # a background child holds the output open: it ends with the session
                log.info("exec_background_killed", container=name)
                _kill_group(proc.pid)
                await asyncio.wait(pending, timeout=DRAIN_SECONDS)
        finally:
            if not exited.done():
                _kill_group(proc.pid)
                await proc.wait()
            for task in (receiver, exited, *pumps):
                task.cancel()
            await asyncio.gather(receiver, exited, *pumps, return_exceptions=True)
            self._close_stdin()
            for transport in self._transports:
                transport.close()
            if self._pty is not None:
                os.close(self._pty)
        code = _exit_code(proc.returncode)
        log.info("exec_finished", container=name, exit_code=code)
        return _exit_status(self.options.command, code)

    async def _spawn(
        self, argv: list[str], env: dict[bytes, bytes]
    ) -> tuple[asyncio.subprocess.Process, list[tuple[asyncio.StreamReader, int]]]:
        """Start the command on descriptors this session owns (asyncio's own pipes would make
        `wait()` last as long as any background child holds them)."""
        theirs: list[int] = []  # the child's ends, closed here once it has them
        stdin_fd, outputs = -1, []
        try:
            if self.options.tty:
                self._pty, slave = pty.openpty()
                theirs.append(slave)
                if self._initial_size is not None:
                    _resize(self._pty, self._initial_size)
                stdin = stdout = stderr = slave
                # setsid --ctty: a session whose controlling terminal is the pty, so ^C and
                # SIGWINCH reach the command as in a terminal
                argv = [_which("setsid"), "--ctty", *argv]
                out_fd, stdin_fd = os.dup(self._pty), os.dup(self._pty)
                outputs = [(out_fd, STDOUT)] if self.options.stdout else []
            else:
                stdin, stdin_fd = self._pipe(theirs, self.options.stdin, child_reads=True)
                stdout, out_fd = self._pipe(theirs, self.options.stdout, child_reads=False)
                stderr, err_fd = self._pipe(theirs, self.options.stderr, child_reads=False)
                outputs = [(fd, ch) for fd, ch in ((out_fd, STDOUT), (err_fd, STDERR)) if fd >= 0]
            proc = await asyncio.create_subprocess_exec(
                *priority.as_usual(_which("nice")),  # not the node's raised weight
                *argv,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=not self.options.tty,  # setsid does it for a tty
            )
        except BaseException:
            for fd in [stdin_fd, *(fd for fd, _ in outputs), self._pty]:
                if fd is not None and fd >= 0:
                    os.close(fd)
            self._pty = None
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        readers = [(await self._reader(fd), channel) for fd, channel in outputs]
        if self.options.stdin and stdin_fd >= 0:
            await self._writer(stdin_fd)
        elif stdin_fd >= 0:
            os.close(stdin_fd)
        return proc, readers

    def _pipe(self, theirs: list[int], wanted: bool, *, child_reads: bool) -> tuple[int, int]:
        """(the child's end, ours) of a new pipe; (DEVNULL, -1) when the stream is not wanted."""
        if not wanted:
            return asyncio.subprocess.DEVNULL, -1
        read, write = os.pipe()
        child, ours = (read, write) if child_reads else (write, read)
        theirs.append(child)
        return child, ours

    async def _reader(self, fd: int) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK)
        transport, _ = await loop.connect_read_pipe(
            lambda: _OutputProtocol(reader), os.fdopen(fd, "rb", 0)
        )
        self._transports.append(transport)
        return reader

    async def _writer(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop), os.fdopen(fd, "wb", 0)
        )
        self._transports.append(transport)
        self._stdin = asyncio.StreamWriter(transport, protocol, None, loop)

    async def _pump(self, reader: asyncio.StreamReader, channel: int) -> None:
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                return
            await self.send(channel, chunk)

    async def _await_initial_size(self) -> bool:
        """Until the client's first resize, keeping what else it sends for the command; False
        when the client went away meanwhile."""
        deadline = asyncio.get_running_loop().time() + INITIAL_SIZE_SECONDS
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return False
            if msg.type == WSMsgType.BINARY and msg.data[:1] == bytes((RESIZE,)):
                self._initial_size = msg.data[1:]
                return True
            self._early.append(msg)
        log.info("exec_no_initial_size", seconds=INITIAL_SIZE_SECONDS)
        return True

    async def _receive(self) -> None:
        """Client to command, until the client closes the WebSocket."""
        for msg in self._early:
            await self._handle(msg)
        self._early = []
        async for msg in self.ws:
            await self._handle(msg)
            if self._client_gone():
                return

    async def _handle(self, msg: Any) -> None:
        if msg.type == WSMsgType.BINARY and msg.data:
            channel, payload = msg.data[0], msg.data[1:]
            if channel == STDIN and self._stdin is not None:
                try:
                    await self._write_stdin(self._stdin, payload)
                except ConnectionError:  # the command closed its stdin or exited
                    self._stdin = None
            elif channel == RESIZE and self._pty is not None:
                _resize(self._pty, payload)
            elif channel == CLOSE and self.v5 and payload[:1] == bytes((STDIN,)):
                self._close_stdin()  # with a tty this closes only our end: a pty has no EOF

    async def _write_stdin(self, stdin: asyncio.StreamWriter, payload: bytes) -> None:
        """Buffer what the command has not read yet, up to a limit; past it wait, but notice
        when the client goes away meanwhile (that ends the command)."""
        stdin.write(payload)
        while stdin.transport.get_write_buffer_size() > STDIN_BUFFER:
            if self._client_gone():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stdin.drain(), timeout=0.5)

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def _close_stdin(self) -> None:
        if self._stdin is not None:
            self._stdin.close()
            self._stdin = None


class _OutputProtocol(asyncio.StreamReaderProtocol):
    """A command's output as a stream that ends at EOF. A pty's master reads EIO once the last
    slave descriptor closes: that is its EOF. Passed on as an error, it would also throw away
    what the reader still buffers (a StreamReader raises its exception before its data), and
    the whole output of a command that exits at once, such as `tty; exit 6`, could be lost."""

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super().connection_lost(exc)


@dataclass(frozen=True)
class _NotRunnable:
    code: int
    message: str


def _lookup(pid: int, argv0: str, path: str) -> str | _NotRunnable:
    """Where the container finds `argv0`, looked at through /proc/<pid>/root, as runc does."""
    root = f"/proc/{pid}/root"
    if "/" in argv0:
        seen = root + (argv0 if argv0.startswith("/") else os.path.join(_cwd(pid), argv0))
        if not os.path.exists(seen):
            return _NotRunnable(
                127, _runc(f'exec: "{argv0}": stat {argv0}: no such file or directory')
            )
        if os.path.isdir(seen) or not os.access(seen, os.X_OK):
            return _NotRunnable(126, _runc(f'exec: "{argv0}": permission denied'))
        return argv0
    for directory in path.split(":"):
        if directory.startswith("/"):  # as Go's LookPath, relative PATH entries are not used
            candidate = os.path.join(directory, argv0)
            if os.path.isfile(root + candidate) and os.access(root + candidate, os.X_OK):
                return candidate
    return _NotRunnable(127, _runc(f'exec: "{argv0}": executable file not found in $PATH'))


def _runc(what: str) -> str:
    return f"OCI runtime exec failed: exec failed: unable to start container process: {what}"


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return "/"


def _environment(pid: int, *, tty: bool) -> dict[bytes, bytes]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        raw = b""
    env: dict[bytes, bytes] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[key] = value
    env.setdefault(b"PATH", DEFAULT_PATH.encode())
    if tty:
        env.setdefault(b"TERM", b"xterm")  # what container runtimes give an exec with a tty
    return env


def _nsenter(pid: int) -> list[str]:
    argv = [_which("nsenter"), f"--target={pid}", "--mount", "--uts", "--ipc", "--net"]
    with contextlib.suppress(OSError):
        if os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
            argv.append("--pid")
    return [*argv, "--root", "--wd"]


def _which(program: str) -> str:
    found = shutil.which(program, path=DEFAULT_PATH)
    if found is None:
        raise FileNotFoundError(f"{program} (util-linux) is needed for exec and is not installed")
    return found


def _resize(fd: int, payload: bytes) -> None:
    try:
        size = json.loads(payload)
        cols, rows = int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        log.warning("exec_bad_resize", payload=payload[:100].decode(errors="replace"))
        return
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _exit_code(returncode: int | None) -> int:
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode  # killed by signal n: 128 + n


def _exit_status(command: tuple[str, ...], code: int) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }
