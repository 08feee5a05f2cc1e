"""`helm install`, `upgrade` and `uninstall` of charts/kvd for real, with helm 4 (server-side
apply) against a real `kvd local apiserver`: what the release makes, that an upgrade keeps the
TLS material clients already trust (the chart reads it back with `lookup`), and what an
uninstall leaves (the CRDs with the VMs, and the CA).

No node runs the pods here: the daemons running from the chart is `kvd local up`'s (e2e)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvd.api.crds import all_crds
from tests.chart import chart
from tests.local.apiserver.conftest import Server, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
NS = chart.NAMESPACE
EXAMPLE = chart.ROOT / "examples" / "vmi-demo.yaml"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "api")
    yield s
    s.stop()


def _helm(server: Server, *args: str) -> str:
    env = {
        **os.environ,
        "KUBECONFIG": str(server.kubeconfig),
        # helm's cache, config and data under the test's directory, never the user's
        "HELM_CACHE_HOME": str(server.data_dir / "helm" / "cache"),
        "HELM_CONFIG_HOME": str(server.data_dir / "helm" / "config"),
        "HELM_DATA_HOME": str(server.data_dir / "helm" / "data"),
    }
    done = subprocess.run(
        [chart.helm_binary(), *args, "--namespace", NS],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _secret(server: Server, name: str) -> str:
    return server.kubectl("get", "secret", name, "-n", NS, "-o", "jsonpath={.data}").stdout


def _names(server: Server, kinds: str) -> set[str]:
    out = server.kubectl("get", kinds, "-A", "-o", "name").stdout
    return set(out.split())


def test_install_upgrade_and_uninstall(server: Server) -> None:
    out = _helm(server, "install", "kvd", str(chart.CHART), "--create-namespace")
    assert "STATUS: deployed" in out
    made = _names(server, "deploy,ds,svc,pdb,configmap,sa,apiservice")
    assert {
        "deployment.apps/kvd-controller",
        "daemonset.apps/kvd-handler",
        "service/kvd-controller",
        "poddisruptionbudget.policy/kvd-controller",
        "configmap/kvd-config",
        "serviceaccount/kvd-controller",
        "serviceaccount/kvd-handler",
        "apiservice.apiregistration.k8s.io/v1.subresources.kubevirt.io",
    } <= made
    trusted = {s: _secret(server, s) for s in ("kvd-ca", "kvd-controller-tls", "kvd-handler-tls")}
    server.kubectl("apply", "-n", "default", "-f", str(EXAMPLE))

    _helm(
        server, "upgrade", "kvd", str(chart.CHART), "--reuse-values",
        "--set", "config.memoryOverhead=100Mi", "--set", "controller.replicas=3",
    )  # fmt: skip
    assert {s: _secret(server, s) for s in trusted} == trusted, "an upgrade re-issued TLS"
    overhead = server.kubectl(
        "get", "configmap", "kvd-config", "-n", NS, "-o", "jsonpath={.data.memoryOverhead}"
    ).stdout
    assert overhead == "100Mi"
    replicas = server.kubectl(
        "get", "deploy", "kvd-controller", "-n", NS, "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas == "3"

    _helm(server, "uninstall", "kvd")
    left = _names(server, "deploy,ds,svc,pdb,configmap,apiservice,secret,crd")
    assert not {n for n in left if "kvd-controller" in n or "kvd-handler" in n}, left
    assert "apiservice.apiregistration.k8s.io/v1.subresources.kubevirt.io" not in left
    assert "secret/kvd-ca" in left  # helm.sh/resource-policy: keep
    crds = {n for n in left if n.startswith("customresourcedefinition")}
    assert len(crds) == len(all_crds()), left  # kept: `helm uninstall` never removes CRDs
    vmis = server.kubectl("get", "vmis", "-n", "default", "-o", "name").stdout.split()
    assert vmis == ["virtualmachineinstance.kubevirt.io/demo"]
