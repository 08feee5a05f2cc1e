"""The handler against real launchers and guests on a local cluster: start, the phases a guest's
life ends in, deletion with and without ACPI, and a handler restart under three running VMIs."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kvd import rpc_auth, rpc_tls
from kvd.api import keys
from kvd.local import cluster as local
from kvd.local import install
from kvd.rpc.handler.v1 import handler_pb2, handler_pb2_grpc
from kvd.rpc.launcher.v1 import launcher_pb2, launcher_pb2_grpc
from tests.handler.conftest import VMIS, Env
from tests.kube.identities import Identities
from tests.launcher.harness import Console
from tests.support import metrics
from tests.support.console import GrpcConsole
from tests.support.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration  # starts a local cluster (kvd local up) and real guests

MARKER = "KVD-READY"
WORKQUEUE_DEPTH = ("kvd_handler_workqueue_depth", ())


def launcher(env: Env, vmi: dict) -> launcher_pb2_grpc.LauncherServiceStub:  # type: ignore[type-arg]
    socket = env.handler.launcher_dir / env.launcher_pod_of(vmi) / "launcher.sock"
    return launcher_pb2_grpc.LauncherServiceStub(grpc.insecure_channel(f"unix:{socket}"))


def console(env: Env, vmi: dict) -> Console:  # type: ignore[type-arg]
    return Console(launcher(env, vmi))


def processes() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process on the host."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            yield int(proc.name), (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def qemu_pids(env: Env, vmi: dict) -> list[int]:  # type: ignore[type-arg]
    """The QEMU processes of `vmi`'s domain (found by the domain's uuid on their command line)."""
    domain = launcher(env, vmi).GetDomain(launcher_pb2.GetDomainRequest(), timeout=10).domain
    return [
        pid
        for pid, argv in processes()
        if argv[0].startswith(b"/usr/bin/qemu-system") and domain.uuid.encode() in argv
    ]


def condition(vmi: dict, kind: str) -> dict:  # type: ignore[type-arg]
    for c in (vmi.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def test_vmi_reaches_running_with_the_launchers_interfaces_and_console(env: Env) -> None:
    env.create_vmi("first", user_data="#!/bin/sh\necho first-marker\n", network="bridge")
    vmi = env.wait_vmi("first", "Running")
    status = vmi["status"]
    # the guest took the pod's network (bridge binding): its MAC and the pod's IP
    [interface] = status["interfaces"]
    pod = env.cluster.pod(env.launcher_pod_name(vmi)) or {}
    assert interface["name"] == "default"
    assert interface["mac"] and interface["ipAddress"] == pod["status"]["podIP"]
    domain = launcher(env, vmi).GetDomain(launcher_pb2.GetDomainRequest(), timeout=10).domain
    assert [i.mac_address for i in domain.interfaces] == [interface["mac"]]
    assert condition(vmi, "SoftwareEmulation")["status"] == "True"
    phases = [t["phase"] for t in status["phaseTransitionTimestamps"]]
    assert phases[-1] == "Running"
    c = console(env, vmi)
    c.wait_for("first-marker")
    c.wait_for(f"KVD-NET eth0 {interface['ipAddress']}/")
    # the host reaches the guest at the pod's IP, as it reaches any pod
    subprocess.run(["busybox", "ping", "-c", "1", "-W", "5", interface["ipAddress"]], check=True)
    c.cancel()
    # the guest's serial output, as `kubectl logs <launcher pod> -c guest-console-log`
    pod_name = env.launcher_pod_name(vmi)
    wait_for(
        "the marker in the guest-console-log container's log",
        lambda: (
            "first-marker"
            in env.cluster.kubectl("logs", pod_name, "-c", "guest-console-log").stdout
        ),
        interval=0.2,
    )
    events = env.cluster.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=first", "-o",
        "jsonpath={.items[*].reason}",
    ).stdout.split()  # fmt: skip
    assert "Started" in events
    ready = env.wait_vmi_condition("first", "Ready", "True")
    assert ready


def test_guest_poweroff_ends_succeeded(env: Env) -> None:
    env.create_vmi("poweroff", user_data="#!/bin/sh\npoweroff -f\n")
    vmi = env.wait_vmi("poweroff", "Succeeded")
    assert vmi["status"]["reason"] == "GuestShutdown"
    env.wait_launcher_gone(vmi)


def test_a_guest_that_powers_off_while_the_handler_is_down_ends_succeeded(env: Env) -> None:
    # No watch sees the end: the launcher's own record of it, beside its socket, tells the
    # restarted handler (without it the VMI ended Failed, LauncherGone, and a RerunOnFailure
    # VM ran it again).
    env.create_vmi("quiet-end", user_data="#!/bin/sh\nsleep 10\npoweroff -f\n")
    vmi = env.wait_vmi("quiet-end", "Running")
    run_dir = env.handler.launcher_dir / env.launcher_pod_of(vmi)
    pod = env.launcher_pod_name(vmi)
    env.handler.kill()
    try:
        wait_for(
            "the launcher to exit 0 after the guest's poweroff",
            lambda: _compute_exit_code(env, pod) == 0,
            timeout=120,
            diagnose=lambda: f"pod status: {(env.cluster.pod(pod) or {}).get('status')}",
        )
        assert json.loads((run_dir / "ended.json").read_text()) == {
            "state": "DOMAIN_STATE_SHUTOFF",
            "reason": "DOMAIN_STATE_REASON_SHUTDOWN",
        }
        assert (env.vmi("quiet-end") or {})["status"]["phase"] == "Running"  # nobody said else
    finally:
        env.handler.restart()  # the next tests need it, whatever happened here
    ended = env.wait_vmi("quiet-end", "Succeeded")
    assert ended["status"]["reason"] == "GuestShutdown"
    env.wait_launcher_gone(ended)


def _compute_exit_code(env: Env, pod: str) -> int | None:
    """The launcher container's exit code once it has ended (the pod runs on: its console-log
    container follows the log until the pod is deleted)."""
    for status in ((env.cluster.pod(pod) or {}).get("status") or {}).get("containerStatuses", []):
        if status["name"] == "compute" and "terminated" in status["state"]:
            return int(status["state"]["terminated"]["exitCode"])
    return None


def test_qemu_killed_ends_failed_with_a_reason(env: Env) -> None:
    env.create_vmi("crash")
    vmi = env.wait_vmi("crash", "Running")
    pids = qemu_pids(env, vmi)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    failed = env.wait_vmi("crash", "Failed")
    assert failed["status"]["reason"] == "Crashed"
    env.wait_launcher_gone(failed)


def test_launcher_killed_ends_failed_with_a_reason(env: Env) -> None:
    vmi = env.create_vmi("orphaned")
    vmi = env.wait_vmi("orphaned", "Running")
    pod = env.cluster.pod(env.launcher_pod_name(vmi)) or {}
    launcher_pid = _main_pid(env, pod)
    os.kill(launcher_pid, signal.SIGKILL)
    failed = env.wait_vmi("orphaned", "Failed")
    assert failed["status"]["reason"] in ("LauncherGone", "Crashed")
    env.wait_launcher_gone(failed)


def test_deleting_a_vmi_whose_guest_honours_acpi_ends_well_before_the_grace_period(
    env: Env,
) -> None:
    vmi = env.create_vmi("polite", grace=60)
    env.wait_vmi("polite", "Running")
    console(env, vmi).wait_for(MARKER)
    began = time.monotonic()
    env.cluster.raw.delete(f"{VMIS}/polite")
    env.wait_launcher_gone(vmi, timeout=60)
    assert time.monotonic() - began < 60
    events = _events(env, "polite")
    assert "ShuttingDown" in events and "Stopped" in events


def test_a_guest_that_ignores_acpi_is_killed_when_its_grace_period_ends(env: Env) -> None:
    vmi = env.create_vmi("stubborn", grace=3, user_data="#!/bin/sh\ntouch /run/kvd-ignore-acpi\n")
    env.wait_vmi("stubborn", "Running")
    c = console(env, vmi)
    c.wait_for(MARKER)
    env.cluster.raw.delete(f"{VMIS}/stubborn")
    c.wait_for("KVD-ACPI-IGNORED", timeout=30)
    env.wait_launcher_gone(vmi, timeout=60)
    assert "domain_killed" in env.handler.tail(2000)


def _events(env: Env, name: str) -> list[str]:
    return env.cluster.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o",
        "jsonpath={.items[*].reason}",
    ).stdout.split()  # fmt: skip


def _main_pid(env: Env, pod: dict) -> int:  # type: ignore[type-arg]
    """The launcher's pid: the compute container's program (not its shim)."""
    uid = pod["metadata"]["uid"].encode()
    for pid, argv in processes():
        if (
            b"launcher" in argv
            and b"--run-dir" in argv
            and any(uid in part for part in argv)
            and not argv[0].endswith(b"sh")
        ):
            return pid
    raise AssertionError(f"no launcher process for pod {uid!r}")


def test_handler_killed_under_three_running_vmis_picks_them_up_again(env: Env) -> None:
    names = ("keep-a", "keep-b", "gone-c")
    for name in names:
        env.create_vmi(name, grace=30)
    vmis = {name: env.wait_vmi(name, "Running") for name in names}
    pids = {name: qemu_pids(env, vmi) for name, vmi in vmis.items()}
    assert all(pids.values())
    versions = {n: v["metadata"]["resourceVersion"] for n, v in vmis.items()}

    env.handler.kill()
    env.cluster.raw.delete(f"{VMIS}/gone-c")  # while nobody drives it
    env.handler.restart()
    # what the restarted handler queues before its workers start: every VMI of its node (all
    # of this module's), and every VMI it has a record of (gone-c too, if its object is gone)
    queued = {v["metadata"]["name"] for v in env.cluster.raw.get(VMIS)["items"]} | {"gone-c"}

    env.wait_launcher_gone(vmis["gone-c"], timeout=90)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids["gone-c"])
    for name in ("keep-a", "keep-b"):
        assert qemu_pids(env, vmis[name]) == pids[name]  # the same QEMU, never relaunched
        vmi = env.vmi(name) or {}
        assert vmi["status"]["phase"] == "Running"
        phases = [t["phase"] for t in vmi["status"]["phaseTransitionTimestamps"]]
        assert phases == ["Scheduling", "Scheduled", "Running"]  # Running once: no relaunch
    # The restarted handler found nothing to change on them, so it wrote nothing. Its records
    # put keep-a and keep-b in its queue before its workers start, and the queue hands keys out
    # in order: once it has finished as many reconciles as it queued keys at start, and none
    # wait, it has taken theirs (with two workers, one may still be under way).
    host, port = env.handler.metrics_address()

    def reconciled() -> bool:
        samples = metrics.scrape(port, host=host)
        done = metrics.by_label(samples, "kvd_handler_reconcile_duration_seconds_count", "outcome")
        return sum(done.values()) >= len(queued) and samples[WORKQUEUE_DEPTH] == 0

    wait_for(f"the restarted handler to reconcile {sorted(queued)}", reconciled)
    # A reconcile of a running VMI takes milliseconds (GetInfo and GetDomain on a unix socket),
    # and the reconciles the launchers' watches trigger as the handler follows them again come
    # within moments: a write by any of them lands well within 2 s.
    kept = ("keep-a", "keep-b")
    holds_for(
        "keep-a and keep-b keep their resourceVersions",
        lambda: all((env.vmi(n) or {})["metadata"]["resourceVersion"] == versions[n] for n in kept),
        2.0,
    )
    for name in kept:
        vmi = env.vmi(name) or {}
        assert vmi["metadata"]["resourceVersion"] == versions[name], vmi["status"]
        assert condition(vmi, "Ready")["status"] == "True"
    assert _events(env, "keep-a").count("Started") == 1


def test_heartbeat_labels_the_node_and_sigterm_marks_it_unschedulable(env: Env) -> None:
    node = env.cluster.raw.get(f"/api/v1/nodes/{env.cluster.node_name}")
    assert node["metadata"]["labels"]["kubevirt.io/schedulable"] == "true"
    assert node["metadata"]["annotations"]["kubevirt.io/heartbeat"].endswith("Z")
    env.handler.stop()

    def schedulable() -> str:
        node = env.cluster.raw.get(f"/api/v1/nodes/{env.cluster.node_name}")
        return str(node["metadata"]["labels"]["kubevirt.io/schedulable"])

    wait_for(
        "the node to be labelled unschedulable",
        lambda: schedulable() == "false",
        interval=0.2,
        diagnose=env.handler.tail,
    )
    env.handler.restart()
    node = env.cluster.raw.get(f"/api/v1/nodes/{env.cluster.node_name}")
    assert node["metadata"]["labels"]["kubevirt.io/schedulable"] == "true"


def test_console_and_pause_through_the_handlers_service(env: Env) -> None:
    vmi = env.create_vmi("remote", user_data="#!/bin/sh\necho remote-marker\n")
    vmi = env.wait_vmi("remote", "Running")
    # as the controller finds and calls it: the node's annotation, TLS from the cluster CA, and
    # the controller's ServiceAccount token for the handler's audience
    node = env.cluster.raw.get(f"/api/v1/nodes/{env.cluster.node_name}")
    address = node["metadata"]["annotations"][keys.HANDLER_ADDRESS]
    assert address == local.handler_address(env.cluster.data_dir)  # the same, for tools
    data = env.cluster.data_dir
    token = Identities(data, data / "kubeconfig").token(
        install.NAMESPACE, "kvd-controller", audiences=[rpc_auth.HANDLER_AUDIENCE]
    )
    # the chart's CA, and the name every handler's certificate carries (its pod IP cannot be)
    secret = env.cluster.raw.get(f"/api/v1/namespaces/{install.NAMESPACE}/secrets/kvd-handler-tls")
    credentials = rpc_tls.channel_credentials_for(base64.b64decode(secret["data"]["ca.crt"]))
    name = ("grpc.ssl_target_name_override", f"kvd-handler.{install.NAMESPACE}.svc")
    channel = rpc_auth.authorized_channel(
        grpc.secure_channel(address, credentials, options=[name]), token
    )
    stub = handler_pb2_grpc.HandlerServiceStub(channel)
    meta = vmi["metadata"]
    ref = {"namespace": "default", "name": "remote", "uid": meta["uid"]}
    opened = handler_pb2.ConsoleRequest(
        open=handler_pb2.ConsoleOpen(
            **ref, mode=handler_pb2.CONSOLE_MODE_READ_ONLY, replay_bytes=1 << 20
        )
    )
    remote = GrpcConsole(stub.Console, opened, what="the handler's console")
    remote.wait_for("remote-marker")
    remote.cancel()

    def guest_uptime() -> float:
        """The guest's own clock (/proc/uptime), read through the handler's console."""
        opened = handler_pb2.ConsoleOpen(
            **ref, mode=handler_pb2.CONSOLE_MODE_READ_WRITE, replay_bytes=0, take_over=True
        )
        shell = GrpcConsole(
            stub.Console, handler_pb2.ConsoleRequest(open=opened), what="the guest's shell"
        )
        try:
            shell.send(b"\necho uptime-$(cut -d' ' -f1 /proc/uptime)\n")
            return float(shell.wait_match(r"uptime-(\d+\.\d+)", timeout=60).group(1))
        finally:
            shell.cancel()

    before = guest_uptime()
    stub.PauseVirtualMachineInstance(
        handler_pb2.PauseVirtualMachineInstanceRequest(**ref), timeout=30
    )
    paused = env.wait_vmi_condition("remote", "Paused", "True")
    assert condition(paused, "Paused")["reason"] == "PausedByUser"
    assert paused["status"]["phase"] == "Running"
    stub.UnpauseVirtualMachineInstance(
        handler_pb2.UnpauseVirtualMachineInstanceRequest(**ref), timeout=30
    )
    wait_for(
        "the Paused condition to go away",
        lambda: not condition(env.vmi("remote") or {}, "Paused"),
        timeout=60,
        diagnose=env.status("remote"),
    )
    resumed = env.vmi("remote") or {}
    assert resumed["status"]["phase"] == "Running"
    assert condition(resumed, "Ready")["status"] == "True"
    # the guest runs again: its clock goes on from where it was, and keeps advancing
    after = guest_uptime()
    assert after > before
    wait_for(
        f"the guest's clock to advance past {after}",
        lambda: guest_uptime() > after,
        timeout=60,
        interval=0.5,
    )
    channel.close()


def test_a_domain_the_launcher_refuses_is_reported_as_sync_failed(env: Env) -> None:
    # valid for the API, but the launcher finds no such kernel in the image when it defines
    kernel_boot = {"container": {"image": "kvd-demo-kernel", "kernelPath": "/boot/nothere"}}
    env.create_vmi("refused", firmware={"kernelBoot": kernel_boot})
    vmi = env.wait_vmi_condition("refused", "Synchronized", "False")
    synchronized = condition(vmi, "Synchronized")
    assert synchronized["reason"] == "SyncFailed"
    assert "/boot/nothere" in synchronized["message"]
    assert vmi["status"]["phase"] == "Scheduled"
    assert "SyncFailed" in _events(env, "refused")
    env.cluster.raw.delete(f"{VMIS}/refused")
    env.wait_launcher_gone(vmi, timeout=60)
