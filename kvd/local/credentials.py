"""Each local-cluster component's own identity: one kubeconfig per component, never the admin's.

`kvd local up` writes `DATA_DIR/credentials/<component>.kubeconfig` (directory 0700, files 0600)
before it starts the component, with the same server and CA as the admin's `DATA_DIR/kubeconfig`
and the component's own credentials, as a real cluster gives them:

- the node, which plays the kubelet, a client certificate for `system:node:<name>` in
  `system:nodes`, signed by the cluster CA (`clientcerts`), as kubelets authenticate;
- the handler and the controller, a token of their ServiceAccount in kvd's namespace
  (`kvd.api.rbac` names them and says what each may do), from the TokenRequest API. Each `up`
  remakes the Secret `<account>-local-credentials` and binds the new tokens to it, so the
  tokens of an earlier `up` stop working (a bound token holds only while its object exists
  with the same uid); they are valid for a year, since nothing renews them while they run as
  processes (as pods, the node's projected token volume would).

The controller also gets a token for the handlers' audience (`rpc_auth.HANDLER_AUDIENCE`) in
`DATA_DIR/credentials/controller-handler.token`: HandlerService accepts the controller by it.
Nothing here grants anything: what each identity may do is its role's business.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kvd import rpc_auth
from kvd.api import rbac
from kvd.local.apiserver import auth, clientcerts, tls

if TYPE_CHECKING:
    from kvd.kube import client

DIRECTORY = "credentials"
TOKEN_SECONDS = 365 * 24 * 3600
CLUSTER = "kvd-local"


def path(data: Path, component: str) -> Path:
    return data / DIRECTORY / f"{component}.kubeconfig"


def write(target: Path, *, server: str, ca: bytes, user: str, credentials: dict[str, str]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return auth.write_kubeconfig(
        target, server=server, ca=ca, credentials=credentials, name=CLUSTER, user=user
    )


def server_of(kubeconfig: Path) -> str:
    """The API server's URL, from a kubeconfig `kvd local apiserver` wrote."""
    config = yaml.safe_load(kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def node(data: Path, node_name: str) -> Path:
    """The local node's kubeconfig: a fresh client certificate at every `up`."""
    certs = tls.Certificates(data)
    user = rbac.node_user(node_name)
    cert, key = clientcerts.issue(certs, user, (rbac.NODES_GROUP,))
    return write(
        path(data, "node"),
        server=server_of(data / "kubeconfig"),
        ca=certs.ca_cert.read_bytes(),
        user=user,
        credentials={"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
    )


def service_account(
    raw: client.Raw, data: Path, component: str, *, namespace: str, account: str
) -> Path:
    """The kubeconfig of `component`, running as ServiceAccount `namespace/account`."""
    secret = _rebind(raw, namespace, f"{account}-local-credentials")
    token = request_token(raw, namespace, account, secret=secret)
    certs = tls.Certificates(data)
    return write(
        path(data, component),
        server=server_of(data / "kubeconfig"),
        ca=certs.ca_cert.read_bytes(),
        user=rbac.service_account_user(account, namespace),
        credentials={"token": token},
    )


def handler_token(raw: client.Raw, data: Path, *, namespace: str) -> Path:
    """The controller's token for HandlerService (audience `kvd-handler`), in a 0600 file."""
    account = rbac.CONTROLLER
    secret = _bound_secret(raw, namespace, f"{account}-local-credentials")
    token = request_token(
        raw, namespace, account, secret=secret, audiences=[rpc_auth.HANDLER_AUDIENCE]
    )
    target = data / DIRECTORY / "controller-handler.token"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    tmp.replace(target)
    return target


def request_token(
    raw: client.Raw,
    namespace: str,
    account: str,
    *,
    secret: dict[str, Any],
    audiences: list[str] | None = None,
) -> str:
    spec: dict[str, Any] = {
        "expirationSeconds": TOKEN_SECONDS,
        "boundObjectRef": {
            "apiVersion": "v1",
            "kind": "Secret",
            "name": secret["metadata"]["name"],
            "uid": secret["metadata"]["uid"],
        },
    }
    if audiences:
        spec["audiences"] = audiences
    answer = raw.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return str(answer["status"]["token"])


def _rebind(raw: client.Raw, namespace: str, name: str) -> dict[str, Any]:
    """A new Secret `name` (the old one deleted first: its tokens stop working)."""
    from kvd.kube import client  # noqa: PLC0415 - the CLI's other commands need no client

    base = f"/api/v1/namespaces/{namespace}/secrets"
    try:
        raw.delete(f"{base}/{name}")
    except client.ApiError as exc:
        if not exc.not_found:
            raise
    return raw.create(base, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}})


def _bound_secret(raw: client.Raw, namespace: str, name: str) -> dict[str, Any]:
    return raw.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
