"""The user's verbs on `kvd local up` with real guests, with nothing but a kubeconfig: `kvdctl
start|stop|restart|pause|unpause` and the same paths through `kubectl get --raw` / `kubectl
replace --raw`, all through the API server's aggregated `subresources.kubevirt.io` (proxied to
the controller). (Each rule on its own: tests/controller/test_lifecycle.py; the HTTPS server
with a test front proxy: tests/controller/test_subresources.py.)"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import vms
from tests.e2e.conftest import E2E, Json
from tests.e2e.test_console import KVDCTL, Terminal
from tests.e2e.test_vm import uid, vm_manifest
from tests.support.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration
API = "/apis/subresources.kubevirt.io/v1"


def kvdctl(e2e: E2E, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [KVDCTL, *args, "--data-dir", str(e2e.cluster.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def paused(e2e: E2E, name: str) -> bool:
    conditions = ((e2e.vmi(name) or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Paused" and c.get("status") == "True" for c in conditions)


def test_start_restart_stop_change_the_vm_as_kubevirts_do(e2e: E2E) -> None:
    e2e.apply(vm_manifest("verbs", runStrategy="Halted"))
    assert kvdctl(e2e, "start", "verbs").stdout == "VM verbs was scheduled to start\n"
    first = vms.running_vmi(e2e, "verbs")
    again = kvdctl(e2e, "start", "verbs", check=False)
    assert again.returncode == 1 and "already running" in again.stderr
    assert vms.vm(e2e, "verbs")["spec"]["runStrategy"] == "Always"  # type: ignore[index]

    kvdctl(e2e, "restart", "verbs")
    second = vms.running_vmi(e2e, "verbs", not_uid=uid(first))
    assert uid(second) != uid(first)

    kvdctl(e2e, "stop", "verbs", "--force", "--grace-period=0")
    vms.wait_stopped(e2e, "verbs")
    assert vms.vm(e2e, "verbs")["spec"]["runStrategy"] == "Halted"  # type: ignore[index]
    stopped = kvdctl(e2e, "stop", "verbs", check=False)
    assert stopped.returncode == 1
    assert stopped.stderr.startswith("kvdctl stop: ") and "not running" in stopped.stderr
    restart = kvdctl(e2e, "restart", "verbs", check=False)
    assert "Halted does not support manual restart" in restart.stderr
    missing = kvdctl(e2e, "start", "nothere", check=False)
    assert missing.returncode == 1 and '"nothere" not found' in missing.stderr
    e2e.kubectl("delete", "vm", "verbs")


def uptime(terminal: Terminal, tag: str) -> int:
    """The guest's uptime in seconds, asked on its console."""
    terminal.send(f"echo {tag}-$(cut -d. -f1 /proc/uptime)-end\r".encode())
    terminal.expect(f"{tag}-")
    found = wait_for(
        f"the guest's answer {tag}",
        lambda: re.search(rf"{tag}-(\d+)-end", terminal.screen.text),
        timeout=30,
    )
    return int(found[1])


def test_pause_shows_the_paused_condition_and_unpause_clears_it(e2e: E2E) -> None:
    e2e.apply(vm_manifest("sleepy", runStrategy="Always"))
    vms.running_vmi(e2e, "sleepy")
    terminal = Terminal("sleepy", "--data-dir", str(e2e.cluster.data_dir))
    try:
        terminal.expect("Successfully connected to sleepy console")
        terminal.send(b"\r")
        terminal.expect("kvd-demo:/#", timeout=120)
        before = uptime(terminal, "before")
        assert kvdctl(e2e, "pause", "vmi", "sleepy").stdout == "VMI sleepy was scheduled to pause\n"
        wait_for("the VMI's Paused condition", lambda: paused(e2e, "sleepy"), timeout=60)
        twice = kvdctl(e2e, "pause", "vm", "sleepy", check=False)
        assert twice.returncode == 1 and "already paused" in twice.stderr
        terminal.send(b"echo while-$((6 * 7))-paused\r")  # typed now, answered once it runs
        holds_for(
            "a paused guest not to answer",
            lambda: "while-42-paused" not in terminal.screen.text,
            seconds=3,
        )
        kvdctl(e2e, "unpause", "vm", "sleepy")
        wait_for("the Paused condition to go", lambda: not paused(e2e, "sleepy"), timeout=60)
        assert (e2e.vmi("sleepy") or {})["status"]["phase"] == "Running"
        terminal.expect("while-42-paused")
        # the guest runs again and its clock goes on from where it was
        assert uptime(terminal, "after") >= before
        terminal.send(b"\x1d")
        assert terminal.proc.wait(timeout=10) == 0
    finally:
        terminal.close()
    e2e.kubectl("delete", "vm", "sleepy")


def _raw_put(e2e: E2E, tmp_path: Path, path: str, body: Json, *, check: bool = True) -> Any:
    file = tmp_path / "body.json"
    file.write_text(json.dumps(body))
    return e2e.kubectl("replace", "--raw", path, "-f", str(file), check=check)


def test_the_same_paths_through_kubectl_raw(e2e: E2E, tmp_path: Path) -> None:
    listed = json.loads(e2e.kubectl("get", "--raw", API).stdout)
    assert listed["kind"] == "APIResourceList"
    assert "virtualmachines/start" in {r["name"] for r in listed["resources"]}
    assert json.loads(e2e.kubectl("get", "--raw", f"{API}/version").stdout)["gitVersion"]

    e2e.apply(vm_manifest("raw", runStrategy="Halted"))
    base = f"{API}/namespaces/default/virtualmachines/raw"
    _raw_put(e2e, tmp_path, f"{base}/start", {})
    first = vms.running_vmi(e2e, "raw")
    _raw_put(e2e, tmp_path, f"{base}/restart", {"gracePeriodSeconds": 0})
    vms.running_vmi(e2e, "raw", not_uid=uid(first))
    vmi = f"{API}/namespaces/default/virtualmachineinstances/raw"
    _raw_put(e2e, tmp_path, f"{vmi}/pause", {})
    wait_for("the VMI's Paused condition", lambda: paused(e2e, "raw"), timeout=60)
    _raw_put(e2e, tmp_path, f"{vmi}/unpause", {})
    wait_for("the Paused condition to go", lambda: not paused(e2e, "raw"), timeout=60)
    _raw_put(e2e, tmp_path, f"{base}/stop", {"gracePeriod": 0})
    vms.wait_stopped(e2e, "raw")
    refused = _raw_put(e2e, tmp_path, f"{base}/stop", {}, check=False)
    assert refused.returncode == 1 and "not running" in refused.stderr
    e2e.kubectl("delete", "vm", "raw")
