"""`kvd local up | down | status`: the whole local cluster on this machine, as separate processes.

`up` starts each component as its own process (own session, output in `DATA_DIR/logs/<name>.log`)
and waits for the line it prints when ready, in order: the API server (then kvd's CRDs are applied
through it, from `kvd.api.crds` — the same source as the chart's), the local node, the handler
(its launchers' run dirs in `DATA_DIR/launchers/`) and the controller (its Lease and the
`kvd-config` ConfigMap in the `kvd` namespace, which `up` creates with emulation on when
absent). It prints one line per component and the `export KUBECONFIG=…` line. The handler
and the controller listen on ports they pick; each writes where to `DATA_DIR/<name>/address.json`
(`kvd.address_file`) before its ready line, and that file, not the line, is what `up` and
`kvdctl` read. Last, the controller's HTTPS API (`subresources.kubevirt.io`, address
`subresources`) is registered as KubeVirt registers virt-api: a selectorless Service `kvd-api`,
its EndpointSlice and the APIService `v1.subresources.kubevirt.io`, which `up` waits to see
Available, so `kubectl get --raw /apis/subresources.kubevirt.io/v1/...` reaches the controller
through the API server. Without `--detach` it stays in the foreground and Ctrl-C brings
everything down; with it, `kvd local down` does.

What runs is recorded in `DATA_DIR/cluster.json` (pid and kernel start time per component, so a
reused pid is never signalled). `down` stops them in reverse order: the handler (which marks the
node unschedulable), the node (SIGTERM; it leaves its pods, as a kubelet restart would), then
removes everything the node ran — containers, network namespaces, veths, the bridge, cgroups —
through the node's runtime, then stops the API server.
Objects stay in the API server's database, so the next `up` finds them. Every request the API
server answers is in `DATA_DIR/logs/audit.log` (kube's audit Events, level Metadata).
"""

from __future__ import annotations

import base64
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

from kvd import address_file, logs, procfs
from kvd.api import crds, rbac
from kvd.local import credentials
from kvd.local.apiserver import tls
from kvd.local.node import teardown

if TYPE_CHECKING:
    from kvd.kube import client

log = logs.get_logger(__name__)

STATE_FILE = "cluster.json"
KVD_NAMESPACE = "kvd"  # the controller's Lease and ConfigMap
# The local cluster's cpuAllocationRatio (kvd.controller.config): 10m per vCPU instead of
# KubeVirt's 100m, so a core holds about 65 one-vCPU VMs by CPU request (15m each with the
# console container's 5m: 50 request 750m of a 2-core machine's 2000m) and memory becomes the
# limit, as it is for mostly idle guests. Change it live in the ConfigMap.
LOCAL_CPU_ALLOCATION_RATIO = 100
LAUNCHER_DIR = "launchers"  # launcher pods' run dirs, <pod uid>/launcher.sock (hostPath)
COMPONENTS = ("apiserver", "node", "handler", "controller")  # in start order; stopped in reverse
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
LAST_WORDS = 300  # characters of a component's last line shown when it exits before ready
ADDRESS_FILE = "address.json"  # DATA_DIR/<component>/, written by the component (kvd.address_file)
LISTENERS = ("handler", "controller")  # the components that write one
LOOPBACK = "127.0.0.1"  # where the handler and controller serve gRPC in the local cluster
AUDIT_LOG = "audit.log"  # DATA_DIR/logs/, the API server's audit.k8s.io Events (one per request)
API_SERVICE = "kvd-api"  # the selectorless Service in front of the controller's HTTPS API
API_SERVICE_HOST = f"{API_SERVICE}.{KVD_NAMESPACE}.svc"
SUBRESOURCES = "subresources.kubevirt.io"
API_ADDRESS = "subresources"  # the controller's address file names its HTTPS API so
AVAILABLE_TIMEOUT = 30.0


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
    alive = {c.name: c for c in load(data) if c.alive()}
    if len(alive) == len(COMPONENTS):
        raise ClusterError(
            f"the local cluster in {data} is already up; "
            f"run `kvd local down --data-dir {data}` first"
        )
    began = time.monotonic()
    kubeconfig = data / "kubeconfig"
    started: list[Component] = []
    try:
        for name in COMPONENTS:
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
            if name in LISTENERS:
                _listening(data, component)
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
    except BaseException:
        if not alive:
            down(data, components=started)
        else:  # keep what ran before (and the pods it runs); stop only what this call started
            for component in started:
                if component.name not in alive:
                    _stop(component)
            _save(data, list(alive.values()))
        raise
    _save(data, started)  # also the ones kept running after the last one started here
    controller = next(c for c in started if c.name == "controller")
    said = register_api(data, _listening(data, controller))
    print(f"{'apiservice':<10} {said}", file=out, flush=True)
    print(f"\nexport KUBECONFIG={kubeconfig}", file=out, flush=True)
    return started


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
    raw = _admin(data)
    kubeconfig = credentials.service_account(
        raw, data, name, namespace=KVD_NAMESPACE, account=f"kvd-{name}"
    )
    # the controller's certificate also serves subresources.kubevirt.io, which the API server
    # verifies as the Service's name (`kvd-api.kvd.svc`), as kube-aggregator does
    hosts = [LOOPBACK, *([API_SERVICE_HOST] if name == "controller" else [])]
    cert, key = tls.Certificates(data).issue(name, hosts)
    serving = [
        "--listen", f"{LOOPBACK}:0", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
    ]  # fmt: skip
    if name == "controller":
        handler_token = credentials.handler_token(raw, data, namespace=KVD_NAMESPACE)
        return [
            "controller", "--kubeconfig", str(kubeconfig), "--namespace", KVD_NAMESPACE, *serving,
            "--handler-ca-file", str(data / "pki" / "ca.crt"),
            "--handler-token-file", str(handler_token),
            "--launcher-dir", str(data / LAUNCHER_DIR), "--identity", f"{options.node_name}-local",
            "--metrics-listen", "127.0.0.1:0", "--address-file", str(_address_path(data, name)),
            "--api-listen", f"{LOOPBACK}:0",
        ], "kvd controller: ready", "ready "  # fmt: skip
    return [
        "handler", "--node-name", options.node_name, "--kubeconfig", str(kubeconfig), *serving,
        "--allowed-user", rbac.service_account_user(rbac.CONTROLLER, KVD_NAMESPACE),
        "--launcher-dir", str(data / LAUNCHER_DIR), "--state-dir", str(data / "handler"),
        "--metrics-listen", "127.0.0.1:0", "--address-file", str(_address_path(data, name)),
    ], "kvd handler: ready", "ready "  # fmt: skip


def _admin(data: Path) -> client.Raw:
    from kvd.kube import client  # noqa: PLC0415 - the CLI's other commands need no client

    return client.Raw(client.connect(data / "kubeconfig", agent="kvd-local-up"))


def handler_address(data: Path) -> str:
    """HOST:PORT of the running local handler's HandlerService."""
    return _service_address(data, "handler", "handlerService")


def controller_address(data: Path) -> str:
    """HOST:PORT of the running local controller's ControllerService (`kvdctl console`)."""
    return _service_address(data, "controller", "controllerService")


def _service_address(data: Path, component: str, name: str) -> str:
    found = next((c for c in load(data) if c.name == component), None)
    if found is None or not found.alive():
        raise ClusterError(
            f"the local cluster in {data} is not running (no {component}); "
            f"start it with `kvd local up --data-dir {data}`"
        )
    return _listening(data, found).address(name, path=_address_path(data, component))


def _address_path(data: Path, name: str) -> Path:
    return data / name / ADDRESS_FILE


def _listening(data: Path, component: Component) -> address_file.Listening:
    """Where `component` listens, from the file it wrote; one left by an earlier process is
    refused rather than believed."""
    path = _address_path(data, component.name)
    try:
        found = address_file.read(path)
    except address_file.AddressFileError as exc:
        raise ClusterError(f"{component.name} (pid {component.pid}): {exc}") from None
    if found.pid != component.pid:
        raise ClusterError(
            f"{path} was written by pid {found.pid}, not by the running {component.name} "
            f"(pid {component.pid})"
        )
    return found


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
    """kvd's CRDs, its namespace and its ConfigMap, through the API server just started."""
    from kvd.kube import client  # noqa: PLC0415 - the CLI's other commands need no client

    try:
        _install(_admin(kubeconfig.parent))
    except client.ApiError as exc:
        answer = f"answered {exc.status} {exc.reason}" if exc.status else "could not be reached"
        raise ClusterError(
            f"cannot install kvd's CRDs and its {KVD_NAMESPACE} namespace: the API server "
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
    _create_absent(raw, "/api/v1/namespaces", {"metadata": {"name": KVD_NAMESPACE}})
    _create_absent(
        raw,
        f"/api/v1/namespaces/{KVD_NAMESPACE}/configmaps",
        {
            "metadata": {"name": "kvd-config"},
            "data": {
                "useEmulation": "true",
                "cpuAllocationRatio": str(LOCAL_CPU_ALLOCATION_RATIO),
            },
        },
    )
    for body in (
        *rbac.user_roles(),
        *rbac.daemon_objects(KVD_NAMESPACE),
        *rbac.local_node_objects(),
    ):
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


def register_api(data: Path, controller: address_file.Listening) -> str:
    """Register the controller's `subresources.kubevirt.io` API with the API server, as
    KubeVirt's virt-api is registered: the selectorless Service `kvd-api`, an EndpointSlice
    naming where the controller listens (it changes at each start), and the APIService
    `v1.subresources.kubevirt.io` trusting the local CA. Waits until the API server finds it
    Available; a controller that does not serve it is left unregistered. Returns what to show."""
    address = controller.addresses.get(API_ADDRESS)
    if address is None:
        return f"not registered: the controller serves no {SUBRESOURCES} API"
    host, _, port = address.rpartition(":")
    raw = _admin(data)
    ca = (data / "pki" / "ca.crt").read_bytes()
    _reconcile_service(raw, int(port))
    for body in (_endpoint_slice(host.strip("[]"), int(port)), _apiservice(ca)):
        _reconcile_retrying(raw, body)
    name = f"v1.{SUBRESOURCES}"
    deadline = time.monotonic() + AVAILABLE_TIMEOUT
    while True:
        found = raw.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{name}")
        condition: dict[str, Any] = next(
            (
                c
                for c in (found.get("status") or {}).get("conditions") or []
                if c["type"] == "Available"
            ),
            {},
        )
        if condition.get("status") == "True":
            return f"{name} Available ({address})"
        if time.monotonic() > deadline:
            raise ClusterError(
                f"APIService {name} not Available after {AVAILABLE_TIMEOUT:.0f}s: "
                f"{condition.get('reason', 'no condition')}: {condition.get('message', '')}"
            )
        time.sleep(0.1)


def _reconcile_retrying(raw: client.Raw, body: dict[str, Any], attempts: int = 5) -> None:
    """`_reconcile`, again when the object changed between its read and its write (the API
    server's availability controller writes the APIService's status meanwhile)."""
    from kvd.kube import client  # noqa: PLC0415

    for attempt in range(attempts):
        try:
            _reconcile(raw, body)
            return
        except client.ApiError as exc:
            if not exc.conflict or attempt == attempts - 1:
                raise


def _reconcile_service(raw: client.Raw, port: int) -> None:
    """The Service, keeping what the API server allocated (its cluster IP) on an update."""
    from kvd.kube import client  # noqa: PLC0415

    path = f"/api/v1/namespaces/{KVD_NAMESPACE}/services"
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": API_SERVICE, "namespace": KVD_NAMESPACE},
        "spec": {"ports": [{"name": "api", "port": 443, "protocol": "TCP", "targetPort": port}]},
    }
    try:
        current = raw.get(f"{path}/{API_SERVICE}")
    except client.ApiError as exc:
        if not exc.not_found:
            raise
        raw.create(path, body)
        return
    spec = {**(current.get("spec") or {}), **body["spec"]}
    raw.update(f"{path}/{API_SERVICE}", {**body, "metadata": current["metadata"], "spec": spec})


def _endpoint_slice(host: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": API_SERVICE,
            "namespace": KVD_NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": API_SERVICE,
                "endpointslice.kubernetes.io/managed-by": "kvd-local-up",
            },
        },
        "addressType": "IPv6" if ":" in host else "IPv4",
        "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
        "ports": [{"name": "api", "port": port, "protocol": "TCP"}],
    }


def _apiservice(ca: bytes) -> dict[str, Any]:
    """KubeVirt's registration of virt-api (its priorities), trusting the local CA."""
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"v1.{SUBRESOURCES}"},
        "spec": {
            "group": SUBRESOURCES,
            "version": "v1",
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"name": API_SERVICE, "namespace": KVD_NAMESPACE, "port": 443},
            "caBundle": base64.b64encode(ca).decode(),
        },
    }


def _create_absent(raw: Any, path: str, body: dict[str, Any]) -> None:
    """Create `body` unless it exists (a user's edits to it are kept across `up`)."""
    from kvd.kube import client  # noqa: PLC0415

    try:
        raw.create(path, body)
    except client.ApiError as exc:
        if exc.status != 409:
            raise


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
