"""`kvd demo`: one command from nothing to a booted VM: local cluster, demo VMI, its console.

Each step reuses what is already there, so running it again is cheap: a local cluster that is up
in the data dir, a demo VMI that is Running or on its way. A VMI left Succeeded or Failed is
deleted and created afresh. Every wait has a deadline; when one passes, or the VMI fails, the
VMI's conditions and the tail of the controller's and handler's logs are printed, since that is
where the reason is. The VMI is created through the API (`kvd.kube.client`) from
`demo-vmi.yaml`, package data here and `examples/vmi-demo.yaml` in the repository.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kvd.api import keys, kinds, phases
from kvd.cli import cluster, program

if TYPE_CHECKING:
    from kvd.kube import client

Json = dict[str, Any]

RUNNING_TIMEOUT = 120.0
CONSOLE_TIMEOUT = 90.0
GONE_TIMEOUT = 60.0
POLL = 0.1
# The demo guest prints this once its cloud-init script has run and a shell is on the console
# (guest/README.md, "Console protocol").
BOOTED_MARKER = "KVD-READY"
CONSOLE_LINES = 15
LOG_LINES = 20
CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


class DemoError(Exception):
    """A step did not happen; the message says which, `details` what the cluster said, and
    `show_logs` whether the daemons' logs may tell more."""

    def __init__(self, message: str, details: str = "", *, show_logs: bool = True) -> None:
        super().__init__(message)
        self.details = details
        self.show_logs = show_logs


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="bring up the local cluster and boot the demo VM",
        description="Brings up the local cluster (`kvd local up --detach`) unless it is up, "
        "applies the demo VMI, waits for Running showing each phase, prints `kubectl get vmis` "
        "and the guest's console, and how to go on and to tear down. Re-running reuses the "
        "cluster and the VMI.",
    )
    cluster.data_dir_option(parser)
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="a VirtualMachineInstance manifest (default: the demo VMI, examples/vmi-demo.yaml)",
    )
    parser.add_argument(
        "--port", type=int, default=6443, help="API server port when starting the cluster"
    )
    cluster.node_options(parser)  # kvd local up's, for when the cluster is started
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # `kvd --help` loads neither the cluster client nor the local cluster
    from kvd.kube import client  # noqa: PLC0415
    from kvd.local import cluster as local  # noqa: PLC0415

    data = args.data_dir.absolute()
    try:
        manifest = _manifest(args.manifest)
        _ensure_cluster(args, data)
        demo = _Demo(client.Raw(client.connect(data / "kubeconfig", agent="kvd-demo")), manifest)
        print()
        vmi = demo.wait_running(demo.apply())
        pod = demo.launcher_pod(vmi)
        console = demo.wait_booted(pod)
        print()
        _print_vmis(data, demo.namespace)
        print()
        demo.print_console(pod, console)
    except DemoError as exc:
        print(f"\nkvd demo: {exc}", file=sys.stderr)
        if exc.details:
            print(exc.details, file=sys.stderr)
        if exc.show_logs:
            print(_log_tails(data), file=sys.stderr)
        return 1
    except (local.ClusterError, client.ApiError, yaml.YAMLError, OSError) as exc:
        print(f"kvd demo: {exc}", file=sys.stderr)
        return 1
    print()
    _print_next(data, demo.name, pod)
    return 0


def _manifest(path: Path | None) -> Json:
    if path is None:
        text = importlib.resources.files("kvd.cli").joinpath("demo-vmi.yaml").read_text()
    else:
        text = path.read_text()
    manifest = yaml.safe_load(text)
    if not isinstance(manifest, dict) or manifest.get("kind") != kinds.VMI.kind:
        raise DemoError(f"{path}: not a single {kinds.VMI.kind} manifest", show_logs=False)
    if not (manifest.get("metadata") or {}).get("name"):
        raise DemoError(f"{path}: the VMI needs metadata.name", show_logs=False)
    return manifest


def _ensure_cluster(args: argparse.Namespace, data: Path) -> None:
    from kvd.local import cluster as local  # noqa: PLC0415 - loads the client only for this

    found = local.status(data)
    if len(found) == len(local.COMPONENTS) and all(alive for _, alive in found):
        names = ", ".join(c.name for c, _ in found)
        print(f"local cluster in {data} is up ({names}): reusing it")
        return
    options = local.Options(
        data_dir=data,
        port=args.port,
        node_name=args.node_name,
        node_args=cluster.node_args_of(args),
    )
    local.up(options)


class _Demo:
    def __init__(self, raw: client.Raw, manifest: Json) -> None:
        self.raw = raw
        self.manifest = manifest
        meta = manifest.get("metadata") or {}
        self.name: str = meta["name"]
        self.namespace: str = meta.get("namespace") or "default"
        api_version = manifest.get("apiVersion") or f"{kinds.GROUP}/{kinds.STORAGE_VERSION}"
        self.collection = f"/apis/{api_version}/namespaces/{self.namespace}/{kinds.VMI.plural}"
        self.key = f"{self.namespace}/{self.name}"
        self.began = time.monotonic()

    def _progress(self, what: str) -> None:
        print(f"  {what:<13}{time.monotonic() - self.began:6.1f}s", flush=True)

    def get(self) -> Json | None:
        from kvd.kube import client  # noqa: PLC0415

        try:
            return self.raw.get(f"{self.collection}/{self.name}")
        except client.ApiError as exc:
            if exc.not_found:
                return None
            raise

    def apply(self) -> Json:
        """The VMI to wait for: the existing one unless it is final or going away."""
        current = self.get()
        if current is not None:
            phase = _phase(current)
            if current["metadata"].get("deletionTimestamp"):
                print(f"vmi {self.key} is being deleted; waiting until it is gone")
                self.wait_gone()
            elif phases.is_final(phase):
                print(f"vmi {self.key} is {phase}: deleting it to boot it afresh")
                self.raw.delete(f"{self.collection}/{self.name}")
                self.wait_gone()
            else:
                print(f"vmi {self.key} exists ({phase or 'no phase yet'}): reusing it")
                return current
        created = self.raw.create(self.collection, self.manifest)
        self.began = time.monotonic()
        print(f"vmi {self.key} created")
        return created

    def wait_gone(self) -> None:
        deadline = time.monotonic() + GONE_TIMEOUT
        while (last := self.get()) is not None:
            if time.monotonic() > deadline:
                raise DemoError(
                    f"vmi {self.key} still there {GONE_TIMEOUT:.0f}s after its deletion",
                    _explain(last),
                )
            time.sleep(POLL)

    def wait_running(self, vmi: Json) -> Json:
        """Poll until Running, printing each phase as it is first seen."""
        began = time.monotonic()
        seen = ""
        last: Json | None = vmi
        while True:
            phase = _phase(last) if last is not None else ""
            if phase and phase != seen:
                seen = phase
                self._progress(phase)
            if last is None:
                raise DemoError(f"vmi {self.key} was deleted while it was starting")
            if phase == phases.RUNNING:
                return last
            if phases.is_final(phase):
                raise DemoError(f"vmi {self.key} is {phase} instead of Running", _explain(last))
            if time.monotonic() - began > RUNNING_TIMEOUT:
                raise DemoError(
                    f"vmi {self.key} not Running after {RUNNING_TIMEOUT:.0f}s", _explain(last)
                )
            time.sleep(POLL)
            last = self.get()

    def launcher_pod(self, vmi: Json) -> str:
        uid = vmi["metadata"]["uid"]
        active = (vmi.get("status") or {}).get("activePods") or {}
        pods = self.raw.get(
            f"/api/v1/namespaces/{self.namespace}/pods",
            {"labelSelector": f"{keys.CREATED_BY}={uid}"},
        )["items"]
        if not pods:
            raise DemoError(f"vmi {self.key} is Running but no pod is labelled with its uid {uid}")
        pods.sort(key=lambda p: p["metadata"]["uid"] not in active)  # its active pod first
        name: str = pods[0]["metadata"]["name"]
        return name

    def console(self, pod: str) -> str:
        path = f"/api/v1/namespaces/{self.namespace}/pods/{pod}/log"
        return self.raw.text(path, {"container": "guest-console-log"})

    def wait_booted(self, pod: str) -> str:
        """Until the guest's console says it booted (after its cloud-init output). A VMI that
        stops meanwhile ends the wait: also one whose Running was left from before a
        `kvd local down`, until the handler finds its launcher gone. Returns the console."""
        from kvd.kube import client  # noqa: PLC0415

        began = time.monotonic()
        text = ""
        while BOOTED_MARKER not in text:
            vmi = self.get()
            if vmi is None or phases.is_final(_phase(vmi)):
                phase = _phase(vmi) if vmi is not None else "deleted"
                raise DemoError(
                    f"vmi {self.key} is {phase} instead of booting; run `kvd demo` again to "
                    "boot it afresh",
                    _explain(vmi or {}),
                )
            try:
                text = self.console(pod)
            except client.ApiError as exc:  # e.g. the container is not started yet
                text = f"(kubectl logs {pod} -c guest-console-log: {exc.status} {exc.message})"
            if time.monotonic() - began > CONSOLE_TIMEOUT:
                raise DemoError(
                    f"the guest has not printed {BOOTED_MARKER} on its console within "
                    f"{CONSOLE_TIMEOUT:.0f}s; the console so far:",
                    "\n".join(_console_lines(text)[-CONSOLE_LINES:]),
                )
            if BOOTED_MARKER not in text:
                time.sleep(POLL)
        self._progress("guest booted")
        return text

    def print_console(self, pod: str, text: str) -> None:
        print(f"The guest's serial console (kubectl logs {pod} -c guest-console-log), its end:")
        lines = [line for line in _console_lines(text) if line.strip()]
        for line in lines[-CONSOLE_LINES:]:
            print(f"  {line}")


def _phase(vmi: Json) -> str:
    return str((vmi.get("status") or {}).get("phase") or "")


def _console_lines(text: str) -> list[str]:
    """The console's lines as a terminal would not be disturbed by: no escape sequences (the
    guest's shell asks the terminal for the cursor position), no carriage returns."""
    lines = [CONTROL.sub("", line) for line in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _explain(vmi: Json) -> str:
    status = vmi.get("status") or {}
    out = [f"phase: {status.get('phase') or '(none)'}"]
    if status.get("reason"):
        out.append(f"reason: {status['reason']}")
    for c in status.get("conditions") or []:
        detail = " ".join(str(c[k]) for k in ("reason", "message") if c.get(k))
        out.append(f"condition {c.get('type')}={c.get('status')} {detail}".rstrip())
    return "\n".join(out)


def _log_tails(data: Path) -> str:
    out = []
    for component in ("controller", "handler"):
        path = data / "logs" / f"{component}.log"
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_LINES:]
        except FileNotFoundError:
            continue
        out.append(f"\n--- last {len(lines)} lines of {path}")
        out.extend(lines)
    return "\n".join(out)


def _print_vmis(data: Path, namespace: str) -> None:
    kubectl = Path(sys.executable).parent / "kubectl"
    kubeconfig = data / "kubeconfig"
    if kubectl.exists():
        print("$ kubectl get vmis", flush=True)
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        done = subprocess.run(
            [str(kubectl), "get", "vmis", "-n", namespace],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0:
            print(done.stdout, end="")
            return
        print(done.stderr, end="", file=sys.stderr)
    _print_vmi_table(kubeconfig, namespace)


def _print_vmi_table(kubeconfig: Path, namespace: str) -> None:
    """`kubectl get vmis` without kubectl: the CRD's printer columns, from the API."""
    from kvd.kube import client  # noqa: PLC0415

    raw = client.Raw(client.connect(kubeconfig, agent="kvd-demo"))
    group = f"{kinds.GROUP}/{kinds.STORAGE_VERSION}"
    rows = [("NAME", "AGE", "PHASE", "IP", "NODENAME", "READY")]
    for vmi in raw.get(f"/apis/{group}/namespaces/{namespace}/{kinds.VMI.plural}")["items"]:
        status = vmi.get("status") or {}
        interfaces = status.get("interfaces") or [{}]
        ready = [c["status"] for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        rows.append((
            vmi["metadata"]["name"],
            _age(vmi["metadata"].get("creationTimestamp") or ""),
            status.get("phase") or "",
            interfaces[0].get("ipAddress") or "",
            status.get("nodeName") or "",
            ready[0] if ready else "",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) + 3 for i in range(len(rows[0]))]
    for row in rows:
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _age(timestamp: str) -> str:
    try:
        created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int((datetime.now(UTC) - created).total_seconds())
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m"


def _print_next(data: Path, name: str, pod: str) -> None:
    kubectl, kvd, kvdctl = _tool("kubectl"), _tool("kvd"), _tool("kvdctl")
    where = "" if data == cluster.DEFAULT_DATA_DIR.absolute() else f" --data-dir {data}"
    down = f"{kvd} local down{where}"
    print(f"""The VM runs. Next:
  export KUBECONFIG={data / "kubeconfig"}
  # its serial console, interactive (Ctrl+] leaves it)
  {kvdctl} console {name}{where}
  # or follow the console's output
  {kubectl} logs -f {pod} -c guest-console-log
  # the domain, in the launcher pod's own libvirtd
  {kubectl} exec {pod} -c compute -- virsh list
  # shut the VM down and delete it
  {kubectl} delete vmi {name}
  # tear the local cluster down (objects stay for the next `up`)
  {down}""")


def _tool(name: str) -> str:
    """How to call this installation's `name`: a path relative to here if it is below, the bare
    name if PATH finds the same file, else the absolute path."""
    path = Path(sys.executable).parent.absolute() / name
    if not path.exists():
        return name
    here = Path.cwd()
    if here != Path(here.anchor) and path.is_relative_to(here):
        return str(path.relative_to(here))
    found = shutil.which(name)
    if found is not None and Path(found).resolve() == path.resolve():
        return name
    return str(path)
