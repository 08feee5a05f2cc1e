"""What charts/kvd renders, for each variant (chart.VARIANTS): every object valid against the
Kubernetes OpenAPI schema of the chart's lowest kubeVersion (kubernetes-validate, strict), each
daemon's command line accepted by kvd's own parser, and the names, files and settings the
objects share kept consistent."""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import io
import re
from typing import Any

import kubernetes_validate
import pytest
from cryptography import x509

from kvd import rpc_auth
from kvd.api import rbac
from kvd.cli import kvd as kvd_cli
from kvd.cli import program
from kvd.controller import config as clusterconfig
from kvd.controller import render
from tests.chart import chart

Json = dict[str, Any]

# Kinds no Kubernetes OpenAPI schema holds, checked otherwise (never skipped silently):
NOT_IN_KUBERNETES = {
    # OpenShift's API, not Kubernetes'; the test below checks the SCC's shape by hand
    "security.openshift.io/v1": "OpenShift's SecurityContextConstraints",
    # cert-manager's CRDs; their fields are the ones cert-manager documents for v1
    "cert-manager.io/v1": "cert-manager's Issuer and Certificate",
}
# Flags the chart passes that another part of the same change adds to the daemon (issue 18: the
# controller's aggregated API server). Once the parser has one, the test fails until it is
# removed from here, so this list cannot outlive its reason.
# Paths that name a directory on the node for the pods the daemon creates, not a file it opens.
NODE_PATH_FLAGS = {("controller", "--launcher-dir")}


@functools.cache  # helm is slow to start; no test changes what it gets
def _rendered(variant: str, *, include_crds: bool = False) -> list[Json]:
    files, sets = chart.VARIANTS[variant]
    return chart.render(*files, sets=sets, include_crds=include_crds)


@pytest.fixture(scope="module", params=list(chart.VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[str, list[Json]]:
    return request.param, _rendered(request.param, include_crds=True)


def test_every_object_is_valid_for_the_lowest_kube_version(
    variant: tuple[str, list[Json]],
) -> None:
    _, docs = variant
    version = chart.lowest_kube_version()
    checked = 0
    for doc in docs:
        if doc["apiVersion"] in NOT_IN_KUBERNETES:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
        checked += 1
    assert checked >= 15


def test_the_excluded_kinds_are_only_rendered_when_asked_for() -> None:
    kinds = {d["apiVersion"] for d in _rendered("defaults")}
    assert not kinds & NOT_IN_KUBERNETES.keys()
    assert "security.openshift.io/v1" in {d["apiVersion"] for d in _rendered("openshift")}


def test_openshift_sccs_grant_the_handler_and_the_launchers_what_they_take() -> None:
    docs = _rendered("openshift")
    handler = chart.find(docs, "SecurityContextConstraints", "kvd-handler")
    launcher = chart.find(docs, "SecurityContextConstraints", "kvd-launcher")
    assert handler["allowPrivilegedContainer"] is True
    assert handler["allowHostDirVolumePlugin"] and launcher["allowHostDirVolumePlugin"]
    assert not any(s[f"allowHost{n}"] for s in (handler, launcher) for n in ("Network", "PID"))
    assert launcher["allowPrivilegedContainer"] is False
    # the capabilities the controller adds to every launcher pod, and no other
    assert launcher["allowedCapabilities"] == list(render.LAUNCHER_CAPABILITIES)
    for name, account in (("kvd-handler", "kvd-handler"), ("kvd-launcher", "kvd-controller")):
        binding = chart.find(docs, "ClusterRoleBinding", f"{name}:scc")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": chart.NAMESPACE}
        ]
        role = chart.find(docs, "ClusterRole", f"{name}:scc")
        assert role["rules"][0]["resourceNames"] == [name]


def _containers(docs: list[Json]) -> list[tuple[str, Json, Json]]:
    """(daemon, container, pod spec) of each workload."""
    out = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "DaemonSet"):
            pod = doc["spec"]["template"]["spec"]
            out += [(c["args"][0], c, pod) for c in pod["containers"]]
    return out


def _expand(arg: str, env: set[str]) -> str:
    """$(VAR) as the kubelet expands it; one the container does not define stays literal
    there, which is a bug in the chart."""

    def one(found: re.Match[str]) -> str:
        assert found.group(1) in env, f"{arg}: $({found.group(1)}) is not in the container's env"
        return f"value-of-{found.group(1).lower()}"

    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, arg)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = program.parser("kvd", "", kvd_cli.COMMANDS)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"kvd {' '.join(argv)}:\n{err.getvalue()}")


def test_each_daemon_accepts_the_command_line_the_chart_gives_it(
    variant: tuple[str, list[Json]],
) -> None:
    containers = _containers(variant[1])
    assert {daemon for daemon, _, _ in containers} == {"controller", "handler"}
    for daemon, container, _ in containers:
        assert container["command"] == ["kvd"]
        env = {e["name"] for e in container.get("env", [])}
        argv = [_expand(a, env) for a in container["args"]]
        args = _parse(argv)
        assert args.command == daemon
        # no flag that takes a path reads a file the pod does not mount
        mounts = [m["mountPath"] for m in container["volumeMounts"]]
        for arg in argv:
            flag, _, value = arg.partition("=")
            if value.startswith("/") and (daemon, flag) not in NODE_PATH_FLAGS:
                assert any(value == m or value.startswith(m + "/") for m in mounts), arg


def test_the_pods_accounts_and_the_handlers_caller_are_the_ones_rbac_makes() -> None:
    for variant in ("defaults", "all-options"):
        docs = _rendered(variant)
        accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
        by_daemon = {daemon: pod for daemon, _, pod in _containers(docs)}
        controller = by_daemon["controller"]["serviceAccountName"]
        handler = by_daemon["handler"]["serviceAccountName"]
        assert {controller, handler} == accounts
        for name in (controller, handler):
            binding = chart.find(docs, "ClusterRoleBinding", name)
            assert binding["subjects"][0]["name"] == name
            assert chart.find(docs, "ClusterRole", name)["rules"]
        handler_args = next(c for d, c, _ in _containers(docs) if d == "handler")["args"]
        caller = rbac.service_account_user(controller, chart.NAMESPACE)
        assert f"--allowed-user={caller}" in handler_args
        # the Role pins the Lease and ConfigMap the controller's code uses
        role = chart.find(docs, "Role", controller)
        names = {n for r in role["rules"] for n in r.get("resourceNames", [])}
        assert names == {rbac.LEASE, clusterconfig.NAME}
        chart.find(docs, "ConfigMap", clusterconfig.NAME)


def test_the_settings_configmap_holds_exactly_what_the_controller_reads() -> None:
    for variant in chart.VARIANTS:
        data = chart.find(_rendered(variant), "ConfigMap", clusterconfig.NAME)["data"]
        assert set(data) == set(clusterconfig.KNOWN)
        parsed, problems = clusterconfig.parse(data)
        assert problems == [], (variant, problems)
    options = chart.find(_rendered("all-options"), "ConfigMap", clusterconfig.NAME)["data"]
    parsed, _ = clusterconfig.parse(options)
    assert parsed == clusterconfig.ClusterConfig(
        use_emulation=False,
        memory_overhead="100Mi",
        grace_margin_seconds=20,
        launcher_image="registry.example.com/virt/kvd-launcher:custom",
        cpu_allocation_ratio=40,
    )


def test_the_controller_is_replicated_probed_and_unprivileged() -> None:
    docs = _rendered("defaults")
    deploy = chart.find(docs, "Deployment", "kvd-controller")
    assert deploy["spec"]["replicas"] == 2
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--metrics-listen=0.0.0.0:{ports['metrics']}" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    # the token the controller presents is for the audience the handlers check
    (token,) = [v for v in pod["volumes"] if v["name"] == "handler-token"]
    audience = token["projected"]["sources"][0]["serviceAccountToken"]["audience"]
    handler = chart.find(docs, "DaemonSet", "kvd-handler")["spec"]["template"]["spec"]
    assert audience == rpc_auth.HANDLER_AUDIENCE
    assert f"--token-audience={audience}" in handler["containers"][0]["args"]
    pdb = chart.find(docs, "PodDisruptionBudget", "kvd-controller")
    assert pdb["spec"]["selector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]
    service = chart.find(docs, "Service", "kvd-controller")
    api = next(p for p in service["spec"]["ports"] if p["name"] == "api")
    assert api["targetPort"] == "api" and "api" in ports
    apiservice = chart.find(docs, "APIService", "v1.subresources.kubevirt.io")
    assert apiservice["spec"]["service"] == {
        "name": "kvd-controller",
        "namespace": chart.NAMESPACE,
        "port": api["port"],
    }


def test_the_apiservice_trusts_the_ca_that_signed_the_controllers_certificate() -> None:
    docs = _rendered("defaults")
    bundle = base64.b64decode(
        chart.find(docs, "APIService", "v1.subresources.kubevirt.io")["spec"]["caBundle"]
    )
    ca = x509.load_pem_x509_certificate(bundle)
    for secret in ("kvd-controller-tls", "kvd-handler-tls"):
        data = chart.find(docs, "Secret", secret)["data"]
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        assert base64.b64decode(data["ca.crt"]) == bundle
    controller = x509.load_pem_x509_certificate(
        base64.b64decode(chart.find(docs, "Secret", "kvd-controller-tls")["data"]["tls.crt"])
    )
    names = controller.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"kvd-controller.{chart.NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
