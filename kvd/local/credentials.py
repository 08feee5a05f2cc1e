"""The local node's own identity: its kubeconfig, never the admin's.

`kvd local up` writes `DATA_DIR/credentials/node.kubeconfig` (directory 0700, file 0600) before
it starts the node, with the same server and CA as the admin's `DATA_DIR/kubeconfig` and a
client certificate for `system:node:<name>` in `system:nodes`, signed by the cluster CA
(`clientcerts`), as kubelets authenticate. kvd's daemons have no file here: they run as the
chart's pods, with their ServiceAccounts' tokens, which the node projects into them.
Nothing here grants anything: what the node may do is its role's business.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from kvd.api import rbac
from kvd.local.apiserver import auth, clientcerts, tls

DIRECTORY = "credentials"
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
