"""`kvd local up | down | status`: the whole local cluster on this machine.

`up` starts two processes (own session, output in `DATA_DIR/logs/<name>.log`) and waits for the
line each prints when ready: the API server (then kvd's CRDs are applied through it, from
`kvd.api.crds` — the same source as the chart's — with the local node's role) and the local
node. Then it installs kvd as a real cluster gets it (`install`): `helm upgrade --install` of
`charts/kvd` into `kvd-system`, so the controller (a Deployment) and the handler (a DaemonSet)
run as pods on the local node, with the chart's ServiceAccounts and their tokens, RBAC, TLS,
`kvd-config`, and the APIService `v1.subresources.kubevirt.io` with the controller's Service. It
prints one line per component as it is ready — the handler pod Ready, a controller pod Ready and
holding the Lease, the APIService Available (these waits overlap) — and the
`export KUBECONFIG=…` line. Without `--detach` it stays in the foreground and Ctrl-C brings
everything down; with it, `kvd local down` does.

Where the daemons listen is the API's to say (`handler_address`, `controller_address`: their
pods' IPs on the node's bridge, which the host reaches).

What runs is recorded in `DATA_DIR/cluster.json` (pid and kernel start time per process, so a
reused pid is never signalled). `down` stops the node (SIGTERM; it leaves its pods, as a kubelet
restart would), then removes everything the node ran — the daemons' pods and the launchers,
containers, network namespaces, veths, the bridge, cgroups — through the node's runtime, then
stops the API server. Objects stay in the API server's database (the release with them), so the
next `up` finds them: the node runs the daemons' pods again and helm is not rerun unless the
chart or its values changed. Every request the API server answers is in `DATA_DIR/logs/audit.log`
(kube's audit Events, level Metadata).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvd import logs, procfs
from kvd.api import crds, rbac
from kvd.local import credentials, install
from kvd.local.node import teardown

if TYPE_CHECKING:
    from kvd.kube import client

log = logs.get_logger(__name__)

STATE_FILE = "cluster.json"
KVD_NAMESPACE = install.NAMESPACE  # the chart's release: the daemons, their Lease, kvd-config
LAUNCHER_DIR = "launchers"  # launcher pods' run dirs, <pod uid>/launcher.sock (hostPath)
COMPONENTS = ("apiserver", "node")  # the processes, in start order; stopped in reverse
DAEMONS = ("handler", "controller")  # the chart's pods, on the node
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
LAST_WORDS = 300  # characters of a component's last line shown when it exits before ready
AUDIT_LOG = "audit.log"  # DATA_DIR/logs/, the API server's audit.k8s.io Events (one per request)


class ClusterError(RuntimeError):
    """The local cluster could not be brought up or down; the message says which part and why."""


@dataclass(frozen=True)
class Component:
    name: str
    pid: int
    started: int  # the process's start time in clock ticks since boot (/proc/<pid>/stat field 22)
    log: str

    def alive(self) -> bool:
        return procfs.running(self.pid, self.started)


@dataclass(frozen=True, kw_only=True)
class Options:
    data_dir: Path
    port: int = 6443
    node_name: str
    node_args: tuple[str, ...] = ()


def up(options: Options, *, out: Any = sys.stdout) -> list[Component]:
    """Start what is not running, in order; a component still up from an earlier `up` is kept
    (so after a crash, `up` brings back just the part that died)."""
    require_root("it creates network namespaces, a bridge and cgroups")
    data = options.data_dir
    data.mkdir(parents=True, exist_ok=True)
    recorded = load(data)
    alive = {c.name: c for c in recorded if c.alive() and c.name in COMPONENTS}
    if len(alive) == len(COMPONENTS):
        raise ClusterError(
            f"the local cluster in {data} is already up; "
            f"run `kvd local down --data-dir {data}` first"
        )
    began = time.monotonic()
    kubeconfig = data / "kubeconfig"
    started: list[Component] = []
    installing: install.Installing | None = None
    # After a `down` (nothing recorded) the node's pods' statuses are from before it: their
    # containers were removed, so a Ready there counts only once this node run starts them
    # again. After a crash (recorded, not running) the containers survived and the restarted
    # node adopts them: their statuses hold.
    node_since: float | None = None
    try:
        for name in COMPONENTS:
            if name == "node":  # helm needs only the API server: it runs while the node starts
                installing = _begin_install(data)
                if not recorded:
                    node_since = time.time()
            component = alive.get(name)
            if component is not None:
                started.append(component)
                print(f"{name:<10} running {component.pid}", file=out, flush=True)
                continue
            args, ready, detail = _command(name, options)
            component = _start(name, args, data, ready=ready)
            started.append(component)
            _save(data, started)
            line = _ready_line(component, detail)
            print(f"{name:<10} ready  {_since(began)}  {line}", file=out, flush=True)
            if name == "apiserver":
                _install_crds(kubeconfig)
                groups = collections.Counter(c["spec"]["group"] for c in crds.all_crds())
                print(
                    f"{'crds':<10} ready  {_since(began)}  "
                    + ", ".join(f"{n} kind{'s' * (n > 1)} of {g}" for g, n in groups.items()),
                    file=out,
                    flush=True,
                )
        _save(data, started)  # also the ones kept running after the last one started here
        assert installing is not None
        _install_kvd(data, installing, options.node_name, began, since=node_since, out=out)
    except BaseException:
        if installing is not None:
            installing.cancel()
        if not alive:
            down(data, components=started)
        else:  # keep what ran before (and the pods it runs); stop only what this call started
            for component in started:
                if component.name not in alive:
                    _stop(component)
            _save(data, list(alive.values()))
        raise
    print(f"\nexport KUBECONFIG={kubeconfig}", file=out, flush=True)
    return started


def _begin_install(data: Path) -> install.Installing:
    from kvd.kube import client  # noqa: PLC0415

    try:
        return install.Installing(data, _admin(data))
    except install.InstallError as exc:
        raise ClusterError(str(exc)) from None
    except client.ApiError as exc:
        raise ClusterError(f"installing kvd: the API server answered: {exc.message}") from None


def _install_kvd(
    data: Path,
    installing: install.Installing,
    node: str,
    began: float,
    *,
    since: float | None,
    out: Any,
) -> None:
    """The chart, then a line for each of the handler, the controller and the APIService."""
    from kvd.kube import client  # noqa: PLC0415

    raw = _admin(data)
    try:
        installing.finish()
        for ready in install.wait_ready(raw, node, since=since):
            if ready.name == "apiservice":
                print(f"{'apiservice':<10} {ready.line}", file=out, flush=True)
            else:
                said = f"{ready.name:<10} ready  {_since(began)}  {ready.line}"
                print(said, file=out, flush=True)
    except install.InstallError as exc:
        raise ClusterError(str(exc)) from None
    except client.ApiError as exc:
        raise ClusterError(f"installing kvd: the API server answered: {exc.message}") from None


def _command(name: str, options: Options) -> tuple[list[str], str, str]:
    """(kvd arguments, the line that says it is ready, the prefix of what to show of it)."""
    data = options.data_dir
    if name == "apiserver":
        args = [
            "local", "apiserver", "--data-dir", str(data), "--port", str(options.port),
            "--audit-log-path", str(data / "logs" / AUDIT_LOG),
        ]  # fmt: skip
        return args, "kubeconfig: ", "serving "
    if name == "node":
        return (
            ["local", "node", "--data-dir", str(data), *options.node_args,
             "--kubeconfig", str(credentials.node(data, options.node_name))],
            ("kvd local node: ready"),
            "ready ",
        )  # fmt: skip
    raise ValueError(f"no such component: {name}")


def daemons(data: Path) -> list[install.Daemon] | str:
    """kvd's daemon pods, from the API server; why not, when it does not answer."""
    from kvd.kube import client  # noqa: PLC0415

    try:
        return install.daemons(_admin(data))
    except (client.ApiError, OSError) as exc:
        return str(exc)


def _admin(data: Path) -> client.Raw:
    from kvd.kube import client  # noqa: PLC0415 - the CLI's other commands need no client

    return client.Raw(client.connect(data / "kubeconfig", agent="kvd-local-up"))


def handler_address(data: Path) -> str:
    """HOST:PORT of the handler pod's HandlerService (its pod IP, reachable from the host)."""
    pod = _running_daemon(data, "handler")
    return f"{pod['status']['podIP']}:{install.ports(pod)['grpc']}"


def controller_address(data: Path) -> str:
    """HOST:PORT of the leading controller pod's ControllerService."""
    pod = _running_daemon(data, "controller")
    return f"{pod['status']['podIP']}:{install.ports(pod)['grpc']}"


def _running_daemon(data: Path, component: str) -> dict[str, Any]:
    from kvd.kube import client  # noqa: PLC0415

    down_msg = (
        f"the local cluster in {data} is not running; start it with "
        f"`kvd local up --data-dir {data}`"
    )
    if not all(c.alive() for c in load(data)) or not load(data):
        raise ClusterError(down_msg)
    try:
        raw = _admin(data)
        pods = [p for p in install.daemon_pods(raw, component) if install.is_ready(p)]
        holder = install.leader(raw) if component == "controller" else ""
    except client.ApiError as exc:
        raise ClusterError(f"{down_msg} ({exc.message})") from None
    if holder:
        pods = [p for p in pods if p["metadata"]["name"] == holder] or pods
    if not pods:
        raise ClusterError(f"no ready kvd {component} pod in {KVD_NAMESPACE}")
    return pods[0]


def down(data: Path, *, components: Sequence[Component] | None = None) -> list[str]:
    """Stop every component (node first) and remove what the node ran; returns what was stopped."""
    if components is None:
        if not data.is_dir():  # a mistyped --data-dir must not read as "stopped nothing"
            raise ClusterError(f"no local cluster in {data}: the directory does not exist")
        require_root("it removes the network namespaces, bridge and cgroups the node made")
    found = list(components) if components is not None else load(data)
    stopped = []
    order = {name: i for i, name in enumerate(reversed(COMPONENTS))}
    for component in sorted(found, key=lambda c: order.get(c.name, -1)):
        if component.alive():
            _stop(component)
            stopped.append(component.name)
        if component.name == "node":
            teardown.everything(data / "node")
    if not found:
        teardown.everything(data / "node")  # a crashed `up` may have left a runtime
    (data / STATE_FILE).unlink(missing_ok=True)
    return stopped


def status(data: Path) -> list[tuple[Component, bool]]:
    return [(c, c.alive()) for c in load(data)]


def wait(data: Path, components: Sequence[Component]) -> int:
    """Foreground: until SIGINT/SIGTERM or a component exits; then everything comes down."""
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    died: list[str] = []
    while not stop and not died:
        time.sleep(0.2)
        died = [c.name for c in components if not c.alive()]
    if died:
        print(
            f"kvd local: {', '.join(died)} exited; see {data / 'logs'}; stopping", file=sys.stderr
        )
    down(data, components=components)
    return 1 if died else 0


def load(data: Path) -> list[Component]:
    """The components `up` recorded in `DATA_DIR/cluster.json` (none when there is no file)."""
    path = data / STATE_FILE
    try:
        raw = json.loads(path.read_text())
        return [Component(**c) for c in raw.get("components", [])]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError, AttributeError) as exc:
        raise ClusterError(
            f"{path} is corrupt ({exc}), so which processes the local cluster runs is unknown; "
            f"stop those that use {data} by hand, then remove the file"
        ) from None


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        raise ClusterError(f"must run as root ({why})")


# --- internals ---------------------------------------------------------------------------------


def _start(name: str, args: list[str], data: Path, *, ready: str) -> Component:
    logs_dir = data / "logs"
    logs_dir.mkdir(exist_ok=True)
    log_path = logs_dir / f"{name}.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kvd.cli.kvd", *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "KVD_LOG_JSON": os.environ.get("KVD_LOG_JSON", "true")},
        )
    component = Component(name, proc.pid, procfs.start_time(proc.pid) or 0, str(log_path))
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        text = log_path.read_bytes()[offset:].decode(errors="replace")
        if any(line.startswith(ready) for line in text.splitlines()):
            return component
        if proc.poll() is not None:
            raise ClusterError(
                f"{name} exited with {proc.returncode} before it was ready: "
                f"{_last_words(text)} (its log: {log_path})"
            )
        if time.monotonic() > deadline:
            _stop(component)
            raise ClusterError(f"{name} not ready after {READY_TIMEOUT:.0f}s; see {log_path}")
        time.sleep(0.05)


def _last_words(text: str) -> str:
    """What a component that exited said last about why: the one line a kvd command prints when
    it fails (`kvd …: …`), else its last line; at most LAST_WORDS characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("kvd ")] or lines or ["(nothing)"]
    last = said[-1]
    return last if len(last) <= LAST_WORDS else last[: LAST_WORDS - 1] + "…"


def _ready_line(component: Component, prefix: str) -> str:
    for line in Path(component.log).read_text(errors="replace").splitlines()[::-1]:
        if prefix in line:
            return line.split(prefix, 1)[1].strip()
    return ""


def _stop(component: Component) -> None:
    try:
        os.kill(component.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while component.alive():
        if time.monotonic() > deadline:
            log.warning("component_killed", component=component.name, pid=component.pid)
            os.kill(component.pid, signal.SIGKILL)
        time.sleep(0.05)
        _reap(component.pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _install_crds(kubeconfig: Path) -> None:
    """kvd's CRDs and the local node's role, through the API server just started."""
    from kvd.kube import client  # noqa: PLC0415 - the CLI's other commands need no client

    try:
        _install(_admin(kubeconfig.parent))
    except client.ApiError as exc:
        answer = f"answered {exc.status} {exc.reason}" if exc.status else "could not be reached"
        raise ClusterError(
            f"cannot install kvd's CRDs and the local node's role: the API server "
            f"{answer}: {exc.message}"
        ) from None


def _install(raw: client.Raw) -> None:
    from kvd.kube import client  # noqa: PLC0415

    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for body in crds.all_crds():
        name = body["metadata"]["name"]
        try:
            current = raw.get(f"{base}/{name}")
        except client.ApiError as exc:
            if not exc.not_found:
                raise
            raw.create(base, body)
        else:
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            raw.update(f"{base}/{name}", body)
    for body in rbac.local_node_objects():  # the chart has kvd's own roles; this is the node's
        _reconcile(raw, body)
    deadline = time.monotonic() + 30
    for body in crds.all_crds():
        name = body["metadata"]["name"]
        while not _established(raw.get(f"{base}/{name}")):
            if time.monotonic() > deadline:
                raise ClusterError(f"CRD {name} not Established after 30s")
            time.sleep(0.05)


def _reconcile(raw: client.Raw, body: dict[str, Any]) -> None:
    """Create `body`, or make the existing object what kvd ships now (these are kvd's own:
    roles, bindings and accounts whose content an upgrade may change)."""
    from kvd.kube import client  # noqa: PLC0415

    group, _, version = body["apiVersion"].rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    namespace = body["metadata"].get("namespace")
    plural = {"ServiceAccount": "serviceaccounts"}.get(body["kind"], f"{body['kind'].lower()}s")
    collection = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    try:
        raw.create(collection, body)
    except client.ApiError as exc:
        if not exc.conflict:
            raise
        path = f"{collection}/{body['metadata']['name']}"
        current = raw.get(path)
        wanted = {**body, "metadata": {**current["metadata"], **body["metadata"]}}
        raw.update(path, wanted)


def _established(crd: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Established" and c.get("status") == "True"
        for c in (crd.get("status") or {}).get("conditions") or []
    )


def _save(data: Path, components: list[Component]) -> None:
    path = data / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"components": [asdict(c) for c in components]}, indent=2))
    os.replace(tmp, path)


def _since(began: float) -> str:
    return f"{time.monotonic() - began:5.2f}s"
