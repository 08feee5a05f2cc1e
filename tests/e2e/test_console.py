"""`kvdctl console`: a user's terminal on the guest's serial port, through the API server (the
aggregated `subresources.kubevirt.io`), the controller (which authorizes the user by RBAC) and
the node's handler, with nothing but the user's kubeconfig."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest
import yaml

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
        terminal.expect("Successfully connected to term console")
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
        again.expect("Successfully connected to term console")
        again.send(b"\r")
        again.expect("kvd-demo:/#")
        again.send(b"\x1d")
        assert again.proc.wait(timeout=10) == 0
    finally:
        again.close()
    e2e.kubectl("delete", "vmi", "term")


def test_console_waits_for_a_vmi_still_starting(e2e: E2E) -> None:
    e2e.apply(vmi_manifest("late", marker="late-booted"))
    terminal = Terminal("late", "--timeout", "3", "--data-dir", str(e2e.cluster.data_dir))
    try:
        terminal.expect("Waiting for default/late to run")
        terminal.expect("Successfully connected to late console", timeout=180)
        terminal.expect("late-booted", timeout=90)
        terminal.send(b"\x1d")
        assert terminal.proc.wait(timeout=10) == 0
    finally:
        terminal.close()
    e2e.kubectl("delete", "vmi", "late")


def test_console_of_a_vmi_that_is_not_there_says_so(e2e: E2E) -> None:
    done = subprocess.run(
        [KVDCTL, "console", "nothere", "--data-dir", str(e2e.cluster.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert '"nothere" not found' in done.stderr
    assert done.stderr.startswith("kvdctl console: ") and len(done.stderr.splitlines()) == 1


def user_kubeconfig(e2e: E2E, user: str, path: Path) -> Path:
    """The admin's kubeconfig with `user`'s token instead (`kvd local token --user USER`): the
    same server and CA, nothing else of the admin's."""
    token = subprocess.run(
        [KVD, "local", "token", "--user", user, "--data-dir", str(e2e.cluster.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    config = yaml.safe_load(e2e.cluster.kubeconfig.read_text())
    config["users"] = [{"name": user, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = user
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_user_may_open_the_console_only_with_the_right_to(e2e: E2E, tmp_path: Path) -> None:
    """alice, bound to `view` in namespace a, may see the VMI but not its console; bound to
    `edit`, she may (KubeVirt's kubevirt.io:edit aggregates into edit)."""
    e2e.kubectl("create", "namespace", "a")
    e2e.kubectl("apply", "-n", "a", "-f", "-", stdin=vmi_manifest("term", marker="alice-sees"))
    e2e.kubectl(
        "wait", "-n", "a", "vmi/term", "--for=jsonpath={.status.phase}=Running", "--timeout=120s"
    )
    alice = user_kubeconfig(e2e, "alice", tmp_path / "alice.kubeconfig")
    args = ["term", "-n", "a", "--kubeconfig", str(alice), "--data-dir", str(e2e.cluster.data_dir)]

    e2e.kubectl("create", "rolebinding", "alice", "--clusterrole=view", "--user=alice", "-n", "a")
    e2e.kubectl("create", "namespace", "b")
    as_alice = ["--kubeconfig", str(alice)]
    listed = e2e.kubectl(*as_alice, "get", "vmis", "-n", "a", "-o", "name")
    assert listed.stdout.split() == ["virtualmachineinstance.kubevirt.io/term"]
    deleted = e2e.kubectl(*as_alice, "delete", "vmi", "term", "-n", "a", check=False)
    assert deleted.returncode == 1
    assert deleted.stderr.strip() == (
        'Error from server (Forbidden): virtualmachineinstances.kubevirt.io "term" is forbidden: '
        'User "alice" cannot delete resource "virtualmachineinstances" in API group '
        '"kubevirt.io" in the namespace "a"'
    )
    elsewhere = e2e.kubectl(*as_alice, "get", "vmis", "-n", "b", check=False)
    assert elsewhere.returncode == 1
    assert (
        'cannot list resource "virtualmachineinstances" in API group "kubevirt.io" in the '
        'namespace "b"' in elsewhere.stderr
    )
    # what alice may do, as the admin sees it by impersonation: the view role, with KubeVirt's
    # kubevirt.io:view aggregated into it
    can = e2e.kubectl("auth", "can-i", "--list", "-n", "a", "--as", "alice").stdout
    assert any(
        line.split()[0] == "virtualmachineinstances.kubevirt.io" and "[get list watch]" in line
        for line in can.splitlines()
        if line.strip()
    ), can
    # CDI's roles, which kvd ships as it serves DataVolumes, aggregate the same way
    assert _can(e2e, "get", "datavolumes.cdi.kubevirt.io")
    assert not _can(e2e, "create", "datavolumes.cdi.kubevirt.io")
    refused = subprocess.run(
        [KVDCTL, "console", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1, refused.stderr
    # the API server refuses it before proxying, or the controller after: either names it
    assert refused.stderr.startswith("kvdctl console: "), refused.stderr
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert 'User "alice" cannot get' in refused.stderr
    assert "virtualmachineinstances/console" in refused.stderr
    assert '"subresources.kubevirt.io" in the namespace "a"' in refused.stderr

    e2e.kubectl("delete", "rolebinding", "alice", "-n", "a")
    e2e.kubectl("create", "rolebinding", "alice", "--clusterrole=edit", "--user=alice", "-n", "a")
    assert _can(e2e, "create", "datavolumes.cdi.kubevirt.io")
    assert not _can(e2e, "deletecollection", "datavolumes.cdi.kubevirt.io")
    terminal = Terminal(*args)
    try:
        terminal.expect("Successfully connected to term console")
        terminal.expect("alice-sees", timeout=90)  # the guest's own output, replayed or live
        terminal.send(b"\x1d")
        assert terminal.proc.wait(timeout=10) == 0
    finally:
        terminal.close()
    e2e.kubectl("delete", "namespace", "a", "--wait=false")


def _can(e2e: E2E, verb: str, resource: str) -> bool:
    """`kubectl auth can-i` for alice in namespace a, as the admin asks it by impersonation."""
    asked = e2e.kubectl("auth", "can-i", verb, resource, "-n", "a", "--as", "alice", check=False)
    assert asked.stdout.strip() in ("yes", "no"), (asked.stdout, asked.stderr)
    return bool(asked.stdout.strip() == "yes")
