"""Every object charts/kvd renders, applied with `kubectl apply --dry-run=server --validate=strict`
to a real `kvd local apiserver`: the server decodes, defaults, validates and admits each one as it
would install it, without storing it. The CRDs are installed for real first (as helm does with
crds/), and the release namespace made, since dry-run objects need both to exist.

OpenShift's and cert-manager's kinds are not served there (no such API or CRDs on a plain
cluster); they are left out by apiVersion, as test_manifests.NOT_IN_KUBERNETES says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.chart import chart
from tests.chart.test_manifests import NOT_IN_KUBERNETES
from tests.local.apiserver.conftest import Server, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("chart") / "api")
    try:
        s.kubectl("apply", "-f", str(chart.CHART / "crds"))
        s.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
        s.kubectl("create", "namespace", chart.NAMESPACE)
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("variant", list(chart.VARIANTS))
def test_every_object_passes_a_strict_server_side_dry_run(server: Server, variant: str) -> None:
    files, sets = chart.VARIANTS[variant]
    docs = [
        d
        for d in chart.render(*files, sets=sets)
        if d["apiVersion"] not in NOT_IN_KUBERNETES
        # the namespace exists already (created above, as --create-namespace would)
        and d["kind"] != "Namespace"
    ]
    assert len(docs) >= 15
    done = server.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        stdin=yaml.safe_dump_all(docs), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(said) == len(docs), done.stdout
    assert all(line.endswith("(server dry run)") for line in said), done.stdout
    # nothing was stored
    left = server.kubectl("get", "deploy,ds,svc,pdb,apiservice", "-A", "-o", "name").stdout
    assert "kvd-controller" not in left and "kvd-handler" not in left, left


def test_a_bad_object_is_refused_by_the_same_dry_run(server: Server) -> None:
    """The check above can fail: a field the API does not know is refused under strict."""
    deploy = chart.find(chart.render(), "Deployment", "kvd-controller")
    deploy["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/"
    done = server.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        stdin=yaml.safe_dump(deploy), check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "paht" in done.stderr
