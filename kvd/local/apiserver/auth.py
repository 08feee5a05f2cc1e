"""Bearer-token authentication for the local API server, and the kubeconfig that carries it.

On first start a random token is generated and stored with mode 0600 in the data directory;
its user is `kvd-admin` in group `system:masters`, which `policy` authorizes for everything
(the local server has no RBAC yet). A kubeconfig pointing at the server with that token is
written next to it. Like kube-apiserver's default `system:public-info-viewer` role, `/version` and
the health endpoints answer without a token; everything else is 401 without a valid one.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

ANONYMOUS_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
ADMIN = "kvd-admin"
MASTERS = "system:masters"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""
    # user.Info's Extra (an impersonated user's `Impersonate-Extra-*`): (key, values) pairs
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


class Tokens:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "token"
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        os.chmod(self.path, 0o600)
        self.admin_token = self.path.read_text().strip()

    def authenticate(self, header: str | None) -> User | None:
        if not header or not header.startswith("Bearer "):
            return None
        return self.review(header.removeprefix("Bearer ").strip())

    def review(self, token: str) -> User | None:
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return User(ADMIN, (MASTERS, "system:authenticated"), uid=ADMIN)
        return None


def write_kubeconfig(
    path: Path, *, server: str, token: str, ca: bytes, name: str = "kvd-local"
) -> Path:
    cluster = {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": ADMIN, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": ADMIN, "namespace": "default"}}
        ],
        "current-context": name,
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    tmp.replace(path)
    return path
