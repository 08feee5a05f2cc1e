"""`kvdctl console`: a user's terminal on the guest's serial port, through the handler."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, vmi_manifest
from tests.local.node.conftest import KVD
from tests.support.console import Transcript, pty_output

pytestmark = pytest.mark.integration

KVDCTL = str(Path(KVD).with_name("kvdctl"))


class Terminal:
    """`kvdctl console` on a pseudo-terminal, as a user's shell runs it."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [KVDCTL, "console", *args], stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.screen = Transcript(pty_output(self.master), what="the terminal")

    def expect(self, text: str, *, timeout: float = 60) -> None:
        self.screen.wait_for(text, timeout=timeout)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.screen.wait_ended()  # the reader is done with the descriptor before it is closed
        os.close(self.master)


def test_console_is_the_guests_shell_and_ctrl_bracket_leaves_it_running(e2e: E2E) -> None:
    e2e.apply(vmi_manifest("term", marker="term-booted"))
    e2e.wait_vmi("term", "Running")
    data = str(e2e.cluster.data_dir)
    terminal = Terminal("term", "--data-dir", data)
    try:
        terminal.expect("Connected to default/term")
        terminal.expect("KVD-READY", timeout=90)  # replayed or live: the guest has booted
        terminal.send(b"\r")
        terminal.expect("kvd-demo:/#")
        terminal.send(b"echo $((6*7))-from-the-guest\r")
        terminal.expect("42-from-the-guest")
        terminal.send(b"\x1d")  # Ctrl+]
        assert terminal.proc.wait(timeout=10) == 0
        terminal.expect("Disconnected.")
    finally:
        terminal.close()
    assert (e2e.vmi("term") or {})["status"]["phase"] == "Running"

    again = Terminal("term", "--data-dir", data)  # the console can be opened again
    try:
        again.expect("Connected to default/term")
        again.send(b"\r")
        again.expect("kvd-demo:/#")
        again.send(b"\x1d")
        assert again.proc.wait(timeout=10) == 0
    finally:
        again.close()
    e2e.kubectl("delete", "vmi", "term")


def test_console_of_a_vmi_that_is_not_there_says_so(e2e: E2E) -> None:
    done = subprocess.run(
        [KVDCTL, "console", "nothere", "--data-dir", str(e2e.cluster.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "default/nothere" in done.stderr and "not found" in done.stderr
    assert done.stderr.startswith("kvdctl console: ") and len(done.stderr.splitlines()) == 1
