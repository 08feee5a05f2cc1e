"""`connect()` with no kubeconfig: the daemons' in-cluster mode (the chart passes no
--kubeconfig). The pod's environment is made for real: KUBERNETES_SERVICE_HOST/PORT naming a
real `kvd local apiserver`, and the mounted token and CA files, at paths the test points the
official client's loader to (in a pod they are under /var/run/secrets/kubernetes.io)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from kubernetes.config import incluster_config

from kvd.kube import client
from tests.local.apiserver.conftest import Server, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "api")
    yield s
    s.stop()


def _pod_files(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment and files a pod gets; returns the token file."""
    kubeconfig = yaml.safe_load(server.kubeconfig.read_text())
    token = tmp_path / "token"
    token.write_text(kubeconfig["users"][0]["user"]["token"])
    url = urlparse(server.url)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(url.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(url.port))
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(
        incluster_config, "SERVICE_CERT_FILENAME", str(server.data_dir / "pki" / "ca.crt")
    )
    return token


def test_without_a_kubeconfig_a_pod_reaches_the_api_with_its_service_account(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _pod_files(server, tmp_path, monkeypatch)
    api = client.connect(None, agent="kvd-controller")
    assert client.Raw(api).get("/api/v1/namespaces/default")["metadata"]["name"] == "default"
    assert client.bearer_token(api) == token.read_text()
    assert client.ca_bundle(api) == (server.data_dir / "pki" / "ca.crt").read_bytes()
    assert api.user_agent.startswith("kvd-controller/")


def test_outside_a_pod_the_error_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(client.ConfigError) as failed:
        client.connect(None)
    assert "KUBERNETES_SERVICE_HOST" in str(failed.value)
    assert "--kubeconfig" in str(failed.value)


def test_a_pod_without_its_token_is_told_which_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _pod_files(server, tmp_path, monkeypatch)
    token.unlink()
    with pytest.raises(client.ConfigError) as failed:
        client.connect(None)
    assert str(token) in str(failed.value) or "token" in str(failed.value).lower()
