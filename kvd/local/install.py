"""kvd on the local cluster, installed the way a real cluster gets it: `helm upgrade --install` of
`charts/kvd` into `kvd-system`, then waiting for what the chart runs.

The values are the chart's, overlaid with `chart-values.yaml` (this package) and the data dir's
own paths (`node.launcherDir`, `node.stateDir`), so two local clusters on one machine share
nothing. The controller and handler then run as the chart's Deployment and DaemonSet pods on the
local node, with the chart's ServiceAccounts, RBAC, TLS and `kvd-config`; the chart's
APIService and Service register `subresources.kubevirt.io`.

A re-`up` reuses the release: helm runs again only when the chart, the values or the paths
changed (their digest is kept in `DATA_DIR/helm/installed.json`) or the release is gone. Before
the first install, objects the chart renders that exist without helm's ownership (a data dir
first brought up by kvd before it installed through the chart: the roles, the APIService) are
adopted, with the label and annotations helm checks, and what that older `up` made itself in
the `kvd` namespace for the API registration is removed.

`wait_ready` then waits for three things at once and reports each, in order, as soon as it holds:
the handler pod on this node Ready; a controller pod Ready and holding the Lease; the APIService
Available.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kvd.kube import client

Json = dict[str, Any]

NAMESPACE = "kvd-system"
RELEASE = "kvd"
VALUES = Path(__file__).with_name("chart-values.yaml")
HELM_TIMEOUT = 120.0
READY_TIMEOUT = 120.0
SUBRESOURCES_API = "v1.subresources.kubevirt.io"
LEASE = "kvd-controller"
OLD_NAMESPACE = "kvd"  # where `up` put kvd before it installed the chart
OLD_API_SERVICE = "kvd-api"  # the selectorless Service (and EndpointSlice) it registered
COMPONENT_LABEL = "app.kubernetes.io/component"


class InstallError(RuntimeError):
    """The chart could not be installed, or what it runs did not become ready."""


def chart_dir() -> Path:
    import kvd  # noqa: PLC0415 - where the package (and the source tree beside it) lies

    found = Path(kvd.__file__).resolve().parent.parent / "charts" / "kvd"
    if not (found / "Chart.yaml").is_file():
        raise InstallError(f"kvd's Helm chart is not at {found}: run kvd from its source tree")
    return found


def helm_binary() -> str:
    beside = Path(sys.executable).parent / "helm"
    if beside.exists():
        return str(beside)
    found = shutil.which("helm")
    if found is None:
        raise InstallError("helm is not installed (in the venv or on PATH): `make setup` adds it")
    return found


def values_args(data: Path) -> list[str]:
    return [
        "--values", str(VALUES),
        "--set", f"node.launcherDir={data / 'launchers'}",
        "--set", f"node.stateDir={data / 'handler'}",
    ]  # fmt: skip


class Installing:
    """`helm upgrade --install` under way, started as soon as the API server serves, so it runs
    while the node starts (the DaemonSet's pod waits for the Node; nothing else does).
    `finish()` waits for it; `cancel()` stops it when `up` fails meanwhile."""

    def __init__(self, data: Path, raw: client.Raw) -> None:
        self._data, self._raw = data, raw
        self._chart = chart_dir()
        self._args = values_args(data)
        self._digest = _digest(self._chart, self._args)
        self._record = data / "helm" / "installed.json"
        self._release = _release_exists(raw)
        self._process: subprocess.Popen[str] | None = None
        try:
            if self._release and json.loads(self._record.read_text())["digest"] == self._digest:
                return  # nothing changed: the release is reused as it is
        except (OSError, ValueError, KeyError):
            pass
        self._process = subprocess.Popen(
            self._command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=helm_env(data),
        )

    def _command(self) -> list[str]:
        return [
            helm_binary(), "upgrade", "--install", RELEASE, str(self._chart),
            "--namespace", NAMESPACE, "--create-namespace", *self._args,
        ]  # fmt: skip

    def finish(self) -> str:
        """Wait for helm; returns what was done. An install that finds kvd objects helm does
        not own (an older `up` made them) adopts them and installs again."""
        if self._process is None:
            return "release kept"
        try:
            _, err = self._process.communicate(timeout=HELM_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise InstallError(f"helm upgrade did not finish in {HELM_TIMEOUT:.0f}s") from None
        if self._process.returncode != 0:
            if self._release or not (
                "invalid ownership metadata" in err or "cannot be imported" in err
            ):
                said = " ".join(err.strip().splitlines()[-3:])
                raise InstallError(f"helm upgrade --install of charts/kvd failed: {said}")
            _adopt(self._raw, _rendered(self._data, self._chart, self._args))
            _remove_old_registration(self._raw)
            # the adopted objects have other field managers (whoever made them): helm's
            # server-side apply takes their fields over, as adopting them means
            _helm(self._data, *self._command()[1:], "--force-conflicts")
        self._record.parent.mkdir(parents=True, exist_ok=True)
        self._record.write_text(json.dumps({"digest": self._digest}))
        return "release upgraded" if self._release else "release installed"

    def cancel(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def helm_env(data: Path) -> dict[str, str]:
    """helm against this cluster, with its cache, config and data in the data dir."""
    home = data / "helm"
    return {
        **os.environ,
        "KUBECONFIG": str(data / "kubeconfig"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def _helm(data: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            [helm_binary(), *args],
            capture_output=True,
            text=True,
            env=helm_env(data),
            timeout=HELM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InstallError(f"helm {args[0]} did not finish in {HELM_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise InstallError(f"helm {args[0]} of charts/kvd failed: {' '.join(said)}")
    return done.stdout


def _digest(chart: Path, args: list[str]) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in chart.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(chart)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(VALUES.read_bytes() + "\0".join(args).encode())
    return h.hexdigest()


def _release_exists(raw: client.Raw) -> bool:
    from kvd.kube import client  # noqa: PLC0415

    try:
        found = raw.get(
            f"/api/v1/namespaces/{NAMESPACE}/secrets",
            {"labelSelector": f"owner=helm,name={RELEASE},status=deployed"},
        )
    except client.ApiError as exc:
        if exc.not_found:
            return False
        raise
    return bool(found.get("items"))


def _rendered(data: Path, chart: Path, args: list[str]) -> list[Json]:
    out = _helm(data, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *args)
    return [d for d in yaml.safe_load_all(out) if isinstance(d, dict) and d.get("kind")]


def _path(body: Json) -> str:
    group, _, version = body["apiVersion"].rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    namespace = body["metadata"].get("namespace")
    plural = body["kind"].lower() + "s"
    where = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    return f"{where}/{body['metadata']['name']}"


def _adopt(raw: client.Raw, rendered: list[Json]) -> None:
    """Give helm what it checks before it takes over an existing object (helm refuses one
    without them): the managed-by label and the release's name and namespace annotations."""
    from kvd.kube import client  # noqa: PLC0415

    ownership = {
        "metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": RELEASE,
                "meta.helm.sh/release-namespace": NAMESPACE,
            },
        }
    }
    for body in rendered:
        path = _path(body)
        try:
            current = raw.get(path)
        except client.ApiError as exc:
            if exc.not_found:
                continue
            raise
        annotations = current["metadata"].get("annotations") or {}
        if annotations.get("meta.helm.sh/release-name") != RELEASE:
            raw.merge_patch(path, ownership)


def _remove_old_registration(raw: client.Raw) -> None:
    from kvd.kube import client  # noqa: PLC0415

    for path in (
        f"/api/v1/namespaces/{OLD_NAMESPACE}/services/{OLD_API_SERVICE}",
        f"/apis/discovery.k8s.io/v1/namespaces/{OLD_NAMESPACE}/endpointslices/{OLD_API_SERVICE}",
    ):
        try:
            raw.delete(path)
        except client.ApiError as exc:
            if not exc.not_found:
                raise


# --- what the chart runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    name: str  # "handler", "controller", "apiservice"
    line: str


def wait_ready(
    raw: client.Raw, node: str, *, since: float | None, timeout: float = READY_TIMEOUT
) -> Iterator[Ready]:
    """Yield the handler, the controller and the APIService, in that order, each once it is
    ready; all three are watched from the start, so a wait overlaps the others. `since`: the
    time (epoch seconds) the node started, when this `up` started it: a pod's status from
    before (Ready, from the node's previous run) counts only once its containers run again."""
    from kvd.kube import client  # noqa: PLC0415

    checks: list[tuple[str, Callable[[], str | None]]] = [
        ("handler", lambda: _handler_ready(raw, node, since)),
        ("controller", lambda: _controller_ready(raw, since)),
        ("apiservice", lambda: _apiservice_ready(raw)),
    ]
    deadline = time.monotonic() + timeout
    done: dict[str, str] = {}
    why = ""
    while checks:
        for name, check in checks:
            if name not in done:
                try:
                    line = check()
                except client.ApiError as exc:
                    line, why = None, exc.message
                if line is not None:
                    done[name] = line
        while checks and checks[0][0] in done:
            name = checks.pop(0)[0]
            yield Ready(name, done[name])
        if not checks:
            return
        if time.monotonic() > deadline:
            waiting = checks[0][0]
            raise InstallError(
                f"kvd's {waiting} not ready after {timeout:.0f}s: {_diagnose(raw, waiting, why)}"
            )
        time.sleep(0.1)


@dataclass(frozen=True)
class Daemon:
    """One of kvd's daemon pods as `kvd local status` shows it."""

    component: str  # "handler", "controller"
    pod: str
    phase: str
    ready: bool
    leading: bool = False


def daemons(raw: client.Raw) -> list[Daemon]:
    """kvd's daemon pods (the chart's handler and controllers), handler first; a component with
    no pod at all is listed with pod "" so that its absence shows."""
    found: list[Daemon] = []
    holder = leader(raw)
    for component in ("handler", "controller"):
        pods = daemon_pods(raw, component)
        if not pods:
            found.append(Daemon(component, "", "Missing", ready=False))
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            name = pod["metadata"]["name"]
            found.append(
                Daemon(
                    component,
                    name,
                    (pod.get("status") or {}).get("phase") or "Pending",
                    ready=is_ready(pod),
                    leading=component == "controller" and name == holder,
                )
            )
    return found


def daemon_pods(raw: client.Raw, component: str) -> list[Json]:
    items: list[Json] = raw.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        {"labelSelector": f"app.kubernetes.io/name=kvd,{COMPONENT_LABEL}={component}"},
    ).get("items", [])
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ports(pod: Json) -> dict[str, int]:
    return {
        p["name"]: int(p["containerPort"])
        for c in pod["spec"]["containers"]
        for p in c.get("ports") or []
        if p.get("name")
    }


def is_ready(pod: Json) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def handler_pod(raw: client.Raw, node: str) -> Json | None:
    return next((p for p in daemon_pods(raw, "handler") if p["spec"].get("nodeName") == node), None)


def leader(raw: client.Raw) -> str:
    """The controller pod holding the Lease ("" when none does)."""
    from kvd.kube import client  # noqa: PLC0415

    try:
        lease = raw.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}")
    except client.ApiError as exc:
        if exc.not_found:
            return ""
        raise
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _fresh(pod: Json, since: float | None) -> bool:
    """Every container of `pod` started at or after `since` (whole seconds, as the API has it)."""
    if since is None:
        return True
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    started = [((s.get("state") or {}).get("running") or {}).get("startedAt") for s in statuses]
    return bool(started) and all(
        t is not None
        and datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() >= int(since)
        for t in started
    )


def _handler_ready(raw: client.Raw, node: str, since: float | None) -> str | None:
    pod = handler_pod(raw, node)
    if pod is None or not is_ready(pod) or not _fresh(pod, since):
        return None
    ip, port = pod["status"].get("podIP", ""), ports(pod)
    return (
        f"{NAMESPACE}/{pod['metadata']['name']} on {ip} "
        f"(handlerService on port {port.get('grpc')}) (metrics on port {port.get('metrics')})"
    )


def _controller_ready(raw: client.Raw, since: float | None) -> str | None:
    holder = leader(raw)
    pod = next((p for p in daemon_pods(raw, "controller") if p["metadata"]["name"] == holder), None)
    if pod is None or not is_ready(pod) or not _fresh(pod, since):
        return None
    ip, port = pod["status"].get("podIP", ""), ports(pod)
    return (
        f"{NAMESPACE}/{holder} (leading) on {ip} (controllerService on port {port.get('grpc')}) "
        f"(subresources.kubevirt.io on port {port.get('api')}) "
        f"(metrics on port {port.get('metrics')})"
    )


def _apiservice_ready(raw: client.Raw) -> str | None:
    found = raw.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{SUBRESOURCES_API}")
    available: Json = next(
        (
            c
            for c in (found.get("status") or {}).get("conditions") or []
            if c.get("type") == "Available"
        ),
        {},
    )
    if available.get("status") != "True":
        return None
    service = found["spec"].get("service") or {}
    svc = raw.get(f"/api/v1/namespaces/{service['namespace']}/services/{service['name']}")
    return f"{SUBRESOURCES_API} Available ({svc['spec'].get('clusterIP')}:{service.get('port')})"


def _diagnose(raw: client.Raw, component: str, why: str) -> str:
    """What a user needs to see first: the pods' states (waiting reasons say most)."""
    if component == "apiservice":
        try:
            found = raw.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{SUBRESOURCES_API}")
        except Exception as exc:  # a diagnosis must not hide the timeout
            return f"{why or exc}"
        return json.dumps((found.get("status") or {}).get("conditions"))
    said = []
    for pod in daemon_pods(raw, component):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        states = [json.dumps(s.get("state")) for s in statuses]
        said.append(
            f"pod {pod['metadata']['name']} {pod.get('status', {}).get('phase')} "
            f"ready={is_ready(pod)} {' '.join(states)}"
        )
    if component == "controller":
        said.append(f"lease holder {leader(raw)!r}")
    return "; ".join(said) or f"no {component} pod ({why or 'none created'})"
