"""`kvd launcher` end to end: a real process, real libvirtd and QEMU (TCG), real gRPC.

Each test boots the kvd-demo guest, so the tests share launchers where they can: the main
path (define, launch, console, watch, graceful shutdown, cleanup) runs two launchers at once
with the same VMI name in different namespaces, which is also the isolation test.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import grpc
import pytest

from kvd import priority
from kvd.rpc.launcher.v1 import domain_pb2 as pb
from kvd.rpc.launcher.v1 import launcher_pb2
from tests.launcher.harness import RPC_TIMEOUT, Console, Launcher, wait_for_event
from tests.support.sched import autogroup, nices
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
USER_DATA = "#!/bin/sh\necho hello-from-userdata\n"
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


@pytest.fixture
def launchers(tmp_path: Path, guest_dir: Path) -> Iterator[list[Launcher]]:
    made: list[Launcher] = []

    def make(directory: str, **kwargs: object) -> Launcher:
        launcher = Launcher(tmp_path / directory, guest_dir, **kwargs)  # type: ignore[arg-type]
        made.append(launcher)
        return launcher

    yield make  # type: ignore[misc]
    for launcher in made:
        launcher.close()


def _running(domain: pb.Domain) -> bool:
    return domain.state == pb.DOMAIN_STATE_RUNNING


def test_define_launch_console_and_graceful_shutdown(launchers) -> None:  # type: ignore[no-untyped-def]
    first = launchers("a", namespace="ns-a", name="same").start()
    second = launchers("b", namespace="ns-b", name="same").start()
    for launcher in (first, second):
        info = launcher.stub.GetInfo(launcher_pb2.GetInfoRequest(), timeout=RPC_TIMEOUT)
        assert list(info.supported_contract_versions) == [1]
        assert (info.vmi_namespace, info.vmi_name, info.vmi_uid) == (
            launcher.namespace,
            launcher.name,
            launcher.uid,
        )
        assert info.emulated and info.emulation_allowed and info.emulation_reason
        assert info.libvirt_version and info.qemu_version

    consoles, watches, seen = {}, {}, {}
    for launcher in (first, second):
        defined = launcher.define(launcher.manifest(user_data=USER_DATA, empty_disk="64Mi"))
        assert f"<name>{launcher.namespace}_same</name>" in defined.domain_xml
        assert defined.domain.state == pb.DOMAIN_STATE_SHUTOFF
        assert defined.domain.metadata.vmi_uid == launcher.uid
        # an identical second define is a no-op
        again = launcher.define(launcher.manifest(user_data=USER_DATA, empty_disk="64Mi"))
        assert again.domain_xml == defined.domain_xml
        watches[launcher.name + launcher.namespace] = launcher.watch()
        seen[launcher.namespace] = []
        first_event = next(watches[launcher.name + launcher.namespace])
        assert first_event.type == pb.DOMAIN_EVENT_TYPE_INITIAL
        launched = launcher.stub.LaunchDomain(
            launcher_pb2.LaunchDomainRequest(vmi_uid=launcher.uid), timeout=RPC_TIMEOUT
        )
        assert launched.domain.state == pb.DOMAIN_STATE_RUNNING
        assert launched.domain.reason == pb.DOMAIN_STATE_REASON_BOOTED
        # the control path outweighs the guest, which weighs as much as any other process
        qemu = _qemu_pid(launcher)
        assert set(nices(qemu).values()) == {priority.GUEST_NICE}
        assert launcher.proc is not None
        assert set(nices(launcher.proc.pid).values()) == {priority.CONTROL_NICE}
        ours = autogroup(launcher.proc.pid)  # a session of its own, as in a container
        assert ours == (ANY, priority.CONTROL_NICE)
        libvirtd = autogroup(_pid_of(launcher, b"libvirtd"))  # its own session, raised
        assert libvirtd == (ANY, priority.CONTROL_NICE) and libvirtd != ours
        assert autogroup(qemu) == (ANY, priority.GUEST_NICE) and autogroup(qemu) != ours
        consoles[launcher.namespace] = Console(launcher.stub)

    for launcher in (first, second):
        console = consoles[launcher.namespace]
        console.wait_for("KVD-GUEST-BOOTED")
        console.wait_for("hello-from-userdata")
        console.wait_for(f"KVD-DISK vdc {64 * 1024 * 1024}")
        console.wait_for("KVD-READY")
        wait_for_event(
            watches[launcher.name + launcher.namespace], _running, seen=seen[launcher.namespace]
        )

    # the two domains are distinct: each launcher's console saw only its own guest
    assert first.stub.GetDomain(
        launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT
    ).domain.uuid != (
        second.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT).domain.uuid
    )

    for launcher in (first, second):
        events = watches[launcher.name + launcher.namespace]
        response = launcher.stub.ShutdownDomain(
            launcher_pb2.ShutdownDomainRequest(vmi_uid=launcher.uid), timeout=RPC_TIMEOUT
        )
        assert response.domain.metadata.HasField("shutdown_request_time")
        stopped = wait_for_event(
            events,
            lambda d: d.state == pb.DOMAIN_STATE_SHUTOFF,
            seen=seen[launcher.namespace],
        )
        assert stopped.domain.reason == pb.DOMAIN_STATE_REASON_SHUTDOWN
        consoles[launcher.namespace].wait_for("KVD-POWEROFF")
        assert launcher.wait_exit(60) == 0, launcher.log()
        # the serial log stays with the pod, for its guest-console-log container
        assert "hello-from-userdata" in (launcher.run_dir / "console.log").read_text()
        leftovers = sorted(
            str(p.relative_to(launcher.run_dir)) for p in launcher.run_dir.rglob("*")
        )
        assert not any(p.endswith((".qcow2", ".iso")) for p in leftovers), leftovers
        assert not (launcher.run_dir / "launcher.sock").exists()
        assert launcher.leftovers() == [], "no QEMU or libvirtd may outlive the launcher"
        assert launcher.base_image.exists()  # the pod's base image is never touched


def test_guest_ignoring_acpi_is_killed_after_the_grace_period(launchers) -> None:  # type: ignore[no-untyped-def]
    launcher = launchers("acpi", grace=3).start()
    launcher.define(launcher.manifest(user_data="#!/bin/sh\ntouch /run/kvd-ignore-acpi\n"))
    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    console = Console(launcher.stub)
    console.wait_for("KVD-READY")
    events, seen = launcher.watch(), []
    assert next(events).type == pb.DOMAIN_EVENT_TYPE_INITIAL
    assert launcher.proc is not None
    sent = time.monotonic()
    launcher.proc.send_signal(signal.SIGTERM)
    # the request is recorded at once and shows on the stream, though the guest ignores it
    requested = wait_for_event(
        events, lambda d: d.metadata.HasField("shutdown_request_time"), seen=seen
    )
    assert requested.domain.state == pb.DOMAIN_STATE_RUNNING
    assert time.monotonic() - sent < 3, "the shutdown request must be published promptly"
    console.wait_for("KVD-ACPI-IGNORED", timeout=30)
    assert launcher.wait_exit(60) == 2, launcher.log()
    waited = time.monotonic() - sent
    assert waited >= 3, f"killed after {waited:.1f}s, before the 3 s grace period ended"
    assert launcher.leftovers() == []


def test_bad_input_is_refused_and_the_domain_is_untouched(launchers) -> None:  # type: ignore[no-untyped-def]
    launcher = launchers("bad").start()
    good = launcher.manifest()
    defined = launcher.define(good)

    def refused(vmi_json: bytes) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            launcher.stub.DefineDomain(
                launcher_pb2.DefineDomainRequest(vmi_json=vmi_json), timeout=RPC_TIMEOUT
            )
        return caught.value

    garbage = refused(b"{not json")
    assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not valid JSON" in (garbage.details() or "")

    no_volume = launcher.manifest()
    no_volume["spec"]["domain"]["devices"]["disks"].append({"name": "x", "disk": {}})
    error = refused(json.dumps(no_volume).encode())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'spec.domain.devices.disks[1].name: no volume named "x"' in (error.details() or "")

    unsupported = launcher.manifest()
    unsupported["spec"]["domain"]["devices"]["watchdog"] = {"name": "w"}
    error = refused(json.dumps(unsupported).encode())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.domain.devices.watchdog: field not supported by kvd" in (error.details() or "")

    other = launcher.manifest()
    other["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    error = refused(json.dumps(other).encode())
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert launcher.uid in (error.details() or "")

    with pytest.raises(grpc.RpcError) as caught:
        launcher.stub.LaunchDomain(
            launcher_pb2.LaunchDomainRequest(vmi_uid="someone-else"), timeout=RPC_TIMEOUT
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # still up, domain unchanged
    got = launcher.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT)
    assert got.domain.state == pb.DOMAIN_STATE_SHUTOFF
    assert got.domain.uuid == defined.domain.uuid
    assert launcher.proc is not None and launcher.proc.poll() is None
    launcher.stub.DeleteDomain(launcher_pb2.DeleteDomainRequest(), timeout=RPC_TIMEOUT)
    with pytest.raises(grpc.RpcError) as caught:
        launcher.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert not list((launcher.run_dir).glob("disks/**/*.qcow2"))


def test_no_define_in_time_exits_non_zero(launchers) -> None:  # type: ignore[no-untyped-def]
    launcher = launchers("idle", define_timeout=2.0).start()
    assert launcher.wait_exit(60) == 3
    assert "define_timeout" in launcher.log()
    assert launcher.leftovers() == []


def test_emulation_not_allowed_is_refused(launchers) -> None:  # type: ignore[no-untyped-def]
    launcher = launchers("noemu", allow_emulation=False).start()
    info = launcher.stub.GetInfo(launcher_pb2.GetInfoRequest(), timeout=RPC_TIMEOUT)
    assert info.emulated and not info.emulation_allowed
    with pytest.raises(grpc.RpcError) as caught:
        launcher.stub.DefineDomain(
            launcher_pb2.DefineDomainRequest(vmi_json=json.dumps(launcher.manifest()).encode()),
            timeout=RPC_TIMEOUT,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "KVM is not usable" in (caught.value.details() or "")
    assert "--allow-emulation" in (caught.value.details() or "")


def test_killed_libvirtd_is_restarted_and_the_guest_keeps_running(launchers) -> None:  # type: ignore[no-untyped-def]
    launcher = launchers("restart").start()
    launcher.define(launcher.manifest())
    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    console = Console(launcher.stub)
    console.wait_for("KVD-GUEST-BOOTED")
    qemu = _qemu_pid(launcher)
    libvirtd = _pid_of(launcher, b"libvirtd")
    os.kill(libvirtd, signal.SIGKILL)

    def back() -> bool:
        got = launcher.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=5)
        running = got.domain.state == pb.DOMAIN_STATE_RUNNING
        return running and _pid_of(launcher, b"libvirtd") != libvirtd

    wait_for(
        "a new libvirtd and the domain running",
        back,
        interval=0.2,
        ignoring=(grpc.RpcError,),
        diagnose=launcher.log,
    )
    assert _qemu_pid(launcher) == qemu
    console.wait_for("KVD-READY")  # the guest kept booting through the restart

    # a guest reboot keeps the domain running and is reported as REBOOTED, never as a stop
    events, seen = launcher.watch(), []
    assert next(events).type == pb.DOMAIN_EVENT_TYPE_INITIAL
    rebooter = Console(launcher.stub, mode=launcher_pb2.CONSOLE_MODE_READ_WRITE, replay=0)
    rebooter.send(b"\nreboot -f\n")
    wait_for_event(events, lambda d: True, seen=seen)
    assert seen[-1].type == pb.DOMAIN_EVENT_TYPE_REBOOTED, seen
    assert seen[-1].domain.state == pb.DOMAIN_STATE_RUNNING
    rebooter.wait_for("KVD-GUEST-BOOTED", timeout=120)  # booted again, on the same stream
    rebooter.cancel()
    rebooter.wait_ended(10)
    assert all(e.domain.state != pb.DOMAIN_STATE_SHUTOFF for e in seen), seen
    assert launcher.proc is not None and launcher.proc.poll() is None
    console.wait_for("KVD-READY")

    # a running domain is not silently redefined: a change that needs a restart is refused
    bigger = launcher.manifest()
    bigger["spec"]["domain"]["resources"]["requests"]["memory"] = "256Mi"
    with pytest.raises(grpc.RpcError) as caught:
        launcher.define(bigger)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs a restart" in (caught.value.details() or "")
    launcher.define(launcher.manifest())  # the unchanged spec is still fine

    # the console is interactive: one writer at a time, input reaches the guest's shell
    writer = Console(launcher.stub, mode=launcher_pb2.CONSOLE_MODE_READ_WRITE, replay=0)
    writer.send(b"\necho kvd-console-$((6 * 7))\n")
    writer.wait_for("kvd-console-42", timeout=60)
    console.wait_for("kvd-console-42", timeout=10)  # readers see the writer's session too
    second = Console(launcher.stub, mode=launcher_pb2.CONSOLE_MODE_READ_WRITE, replay=0)
    second.wait_ended(10)
    assert second.error is not None
    assert second.error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "another client is writing" in (second.error.details() or "")
    taker = Console(
        launcher.stub, mode=launcher_pb2.CONSOLE_MODE_READ_WRITE, replay=0, take_over=True
    )
    taker.send(b"echo taken-$((40 + 2))\n")
    taker.wait_for("taken-42", timeout=60)
    writer.send(b"echo displaced\n")
    writer.wait_ended(10)
    assert writer.error is not None and writer.error.code() == grpc.StatusCode.ABORTED


def test_killed_launcher_leaves_a_qemu_the_next_launcher_cleans_up(launchers) -> None:  # type: ignore[no-untyped-def]
    launcher = launchers("orphan").start()
    launcher.define(launcher.manifest(empty_disk="16Mi"))
    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    qemu = _qemu_pid(launcher)
    assert launcher.proc is not None
    launcher.proc.kill()
    launcher.proc.wait(timeout=10)
    assert _alive(qemu), "QEMU is expected to outlive a kill -9 of its launcher"

    again = launchers("orphan", uid=launcher.uid).start()  # same run dir, same VMI
    wait_for(f"the orphaned QEMU {qemu} to be ended", lambda: not _alive(qemu), diagnose=again.log)
    assert "orphaned_qemu_found" in again.log()
    with pytest.raises(grpc.RpcError) as caught:
        again.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert not list(again.run_dir.glob("disks/**/*.qcow2")), "stale disks must be removed"


def test_debugging_with_grpcurl_alone(launchers) -> None:  # type: ignore[no-untyped-def]
    """As a user debugging a launcher would: list, describe, define, inspect, launch."""
    launcher = launchers("grpcurl").start()
    sock = str(launcher.socket)

    def grpcurl(*args: str, data: str | None = None) -> str:
        argv = [GRPCURL, "-plaintext", "-unix", *(["-d", data] if data else []), sock, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout

    assert stat.S_IMODE(launcher.socket.stat().st_mode) == 0o600
    services = grpcurl("list").split()
    assert "kvd.rpc.launcher.v1.LauncherService" in services
    assert "grpc.health.v1.Health" in services
    assert any("reflection" in s for s in services)
    described = grpcurl("describe", "kvd.rpc.launcher.v1.LauncherService")
    for method in ("DefineDomain", "LaunchDomain", "WatchDomain", "Console", "GetDomain"):
        assert f"rpc {method}" in described
    assert '"status": "SERVING"' in grpcurl("grpc.health.v1.Health/Check")

    vmi = base64.b64encode(json.dumps(launcher.manifest()).encode()).decode()
    grpcurl("kvd.rpc.launcher.v1.LauncherService/DefineDomain", data=json.dumps({"vmiJson": vmi}))
    got = json.loads(grpcurl("kvd.rpc.launcher.v1.LauncherService/GetDomain"))
    assert got["domain"]["state"] == "DOMAIN_STATE_SHUTOFF"
    assert "<domain type='qemu'" in got["domain_xml"]  # grpcurl prints proto field names
    launched = json.loads(grpcurl("kvd.rpc.launcher.v1.LauncherService/LaunchDomain"))
    assert launched["domain"]["state"] == "DOMAIN_STATE_RUNNING"


def _pid_of(launcher: Launcher, name: bytes) -> int:
    for pid in launcher.processes():
        try:
            if Path(f"/proc/{pid}/comm").read_bytes().strip() == name:
                return pid
        except OSError:
            continue
    raise AssertionError(f"no {name!r} process in the launcher's sandbox")


def _qemu_pid(launcher: Launcher) -> int:
    for pid in launcher.processes():
        try:
            if b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError(f"no QEMU in the launcher's sandbox:\n{launcher.log()}")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
