"""kvd.local.node.exec_session: how a command's output is read."""

from __future__ import annotations

import asyncio
import errno
import os
import pty

from kvd.local.node import exec_session


def test_a_pty_that_hangs_up_still_gives_what_it_buffered() -> None:
    """A command that writes and exits at once: its output and the pty's EIO (the master's EOF)
    arrive together. The output must still be read, then the stream ends; as an error, the EIO
    made the reader drop what it held (`kubectl exec -it … -- sh -c 'tty; exit 6'` printed
    nothing, now and then)."""

    async def read_all() -> bytes:
        master, slave = pty.openpty()
        os.write(slave, b"/dev/pts/7\n33 111\n")  # the line discipline makes it \r\n
        os.close(slave)  # the command has exited: the master now has data, then EIO
        reader = asyncio.StreamReader()
        protocol = exec_session._OutputProtocol(reader)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(master, "rb", 0))
        try:
            await asyncio.wait_for(_until_closing(transport), timeout=5)  # the EIO has been read
            return await reader.read()
        finally:
            transport.close()

    assert asyncio.run(read_all()) == b"/dev/pts/7\r\n33 111\r\n"


def test_other_read_errors_stay_errors() -> None:
    async def read() -> None:
        reader = asyncio.StreamReader()
        exec_session._OutputProtocol(reader).connection_lost(OSError(errno.EBADF, "bad fd"))
        await reader.read()

    try:
        asyncio.run(read())
    except OSError as exc:
        assert exc.errno == errno.EBADF
    else:
        raise AssertionError("EBADF was swallowed")


async def _until_closing(transport: asyncio.ReadTransport) -> None:
    """Until the pipe transport has read to the end (data, then EIO) and closes itself."""
    while not transport.is_closing():
        await asyncio.sleep(0.01)
