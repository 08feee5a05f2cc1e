"""VirtualMachines and replica sets in e2e tests, seen the way a user sees them: `kubectl get`,
`kubectl get -w` (every printableStatus the controller writes, so a passing state such as
Stopping is not missed between two polls), the guest powering off, and QEMU killed from
outside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.parse

from tests.e2e.conftest import E2E, Json
from tests.local.kubectl import KUBECTL
from tests.local.node.conftest import processes_mentioning
from tests.support.console import Transcript
from tests.support.waiting import wait_for

BOOT = 120.0  # seconds for a guest to boot under TCG, generous for a loaded machine


def vm(e2e: E2E, name: str) -> Json | None:
    done = e2e.kubectl("get", "vm", name, "-o", "json", check=False)
    if done.returncode != 0:
        assert "NotFound" in done.stderr, done.stderr
        return None
    found: Json = json.loads(done.stdout)
    return found


def status(e2e: E2E, name: str) -> Json:
    return (vm(e2e, name) or {}).get("status") or {}


def wait_shows(e2e: E2E, name: str, printable: str, *, timeout: float = 120) -> Json:
    """Until the VM's printableStatus is `printable`; its status then."""
    wait_for(
        f"VM {name} {printable}",
        lambda: status(e2e, name).get("printableStatus") == printable,
        timeout=timeout,
        interval=0.3,
        diagnose=lambda: (
            f"VM status: {status(e2e, name)}\nVMI: {(e2e.vmi(name) or {}).get('status')}\n"
            f"controller log:\n{e2e.log_tail('controller')}"
        ),
    )
    return status(e2e, name)


def wait_stopped(e2e: E2E, name: str, *, timeout: float = 60) -> Json:
    """Until the VM is Stopped with no VMI (Stopped shows as soon as the VMI ends)."""
    wait_for(
        f"VM {name} Stopped with no VMI",
        lambda: (
            e2e.vmi(name) is None
            and "created" not in (s := status(e2e, name))
            and s.get("printableStatus") == "Stopped"
        ),
        timeout=timeout,
        interval=0.3,
        diagnose=lambda: (
            f"VM status: {status(e2e, name)}\nVMI: {e2e.vmi(name)}\n"
            # how each earlier VMI of it ended, and what the handler made of it
            + e2e.kubectl(
                "get", "events", "--field-selector", f"involvedObject.name={name}",
                "--sort-by=.metadata.creationTimestamp", check=False,
            ).stdout
            + f"handler log:\n{e2e.log_tail('handler', 60)}"
        ),
    )  # fmt: skip
    return status(e2e, name)


def running_vmi(e2e: E2E, name: str, *, not_uid: str = "", timeout: float = 120) -> Json:
    """Until the VM's VMI (another than `not_uid`) is Running; the VMI."""

    def found() -> Json | None:
        vmi = e2e.vmi(name)
        if vmi is None or vmi["metadata"]["uid"] == not_uid:
            return None
        return vmi if (vmi.get("status") or {}).get("phase") == "Running" else None

    vmi: Json = wait_for(
        f"a Running VMI of {name}" + (f" other than {not_uid}" if not_uid else ""),
        found,
        timeout=timeout,
        interval=0.3,
        diagnose=lambda: f"VMI: {e2e.vmi(name)}\nVM status: {status(e2e, name)}",
    )
    return vmi


def table(e2e: E2E, kind: str, name: str) -> list[list[str]]:
    """`kubectl get KIND NAME` as rows of cells."""
    return [line.split() for line in e2e.kubectl("get", kind, name).stdout.splitlines()]


class StatusWatch:
    """`kubectl get vm NAME -w`, printing the printableStatus of every version of the VM."""

    def __init__(
        self, e2e: E2E, name: str, *, kind: str = "vm", field: str = ".status.printableStatus"
    ) -> None:
        """`name` may also be `-l SELECTOR`, to see objects made after the watch began."""
        env = {
            **os.environ,
            "KUBECONFIG": str(e2e.cluster.kubeconfig),
            "HOME": str(e2e.cluster.data_dir),
        }
        self.proc = subprocess.Popen(
            [KUBECTL, "get", kind, *name.split(), "-w", "-o", f"jsonpath={{{field}}}{{'\\n'}}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.transcript = Transcript(self.proc.stdout, what=f"kubectl get {kind} {name} -w")
        # Watching only once the API server says so (its audit log: the watch's response has
        # started): kubectl prints nothing for an empty list, and a change made before its watch
        # began would be seen only as the state it left, never as the steps on the way.
        args = name.split()
        wanted = (
            f"labelSelector={urllib.parse.quote(args[1], safe='')}"
            if args[0] == "-l"
            else f"metadata.name%3D{args[0]}"
        )
        audit = e2e.cluster.data_dir / "logs" / "audit.log"
        wait_for(
            f"kubectl's watch of {kind} {name} to start",
            lambda: any(
                '"stage":"ResponseStarted"' in line
                and '"verb":"watch"' in line
                and wanted in line
                and '"userAgent":"kubectl' in line
                for line in audit.read_text().splitlines()
            ),
            timeout=30,
            diagnose=lambda: self.transcript.text,
        )

    def shown(self) -> list[str]:
        """The statuses shown so far, repeats collapsed."""
        out: list[str] = []
        for line in self.transcript.text.splitlines():
            if line and (not out or out[-1] != line):
                out.append(line)
        return out

    def saw(self, *sequence: str) -> bool:
        """Whether `sequence` appears in order (not necessarily adjacent) in what was shown."""
        it = iter(self.shown())
        return all(any(s == x for x in it) for s in sequence)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def kill_qemu(name: str, namespace: str = "default") -> None:
    """SIGKILL the VMI's QEMU from outside, as a crash (or an OOM killer) would."""
    found = [
        p
        for p in processes_mentioning(f"guest={namespace}_{name},")
        if "qemu-system" in p.split(":", 1)[1]
    ]
    assert len(found) == 1, found
    os.kill(int(found[0].split(":", 1)[0]), signal.SIGKILL)


def guest_poweroff(e2e: E2E, name: str, namespace: str = "default") -> None:
    """The guest powers itself off: its ACPI power button, pressed with `virsh shutdown` in its
    launcher pod (`kubectl exec`), makes the demo guest run `poweroff -f`. Pressed again every
    few seconds until its VMI has ended, since the guest listens for it only once booted."""
    vmi = e2e.vmi(name)
    assert vmi is not None, f"{name} has no VMI"
    [pod] = e2e.pods_of(vmi)
    domain = f"{namespace}_{name}"

    def powered_off() -> bool:
        now = e2e.vmi(name)
        if now is None or now["metadata"]["uid"] != vmi["metadata"]["uid"]:
            return True  # ended, and already gone or replaced
        if (now.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return True
        pod_name = pod["metadata"]["name"]
        e2e.kubectl(
            "exec", pod_name, "-c", "compute", "--", "virsh", "shutdown", domain, check=False
        )
        return False

    wait_for(f"{name}'s guest to power off", powered_off, timeout=BOOT, interval=3.0)
