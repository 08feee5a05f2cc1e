"""Bearer-token authentication for the local API server, and the kubeconfig that carries it.

Tokens are tried in turn, as kube-apiserver's union of authenticators does:

- the admin's static token: made once, random, in DATA_DIR/token (mode 0600); its user is
  `kvd-admin` in `system:masters`. The kubeconfig written next to it carries it.
- signed JWTs (`serviceaccounts`): ServiceAccount tokens from the TokenRequest API, and user
  tokens minted by `kvd local token`.

Authentication is audience-aware, as kube's is: a request to the API is made for the server's own
audiences; a TokenReview may name others. A JWT is accepted for the audiences it shares with
those asked; the static token is valid for the server's audiences only. Like kube-apiserver's
default `system:public-info-viewer` role, `/version` and the health endpoints answer without a
token; everything else is 401 without a valid one.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

ANONYMOUS_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
ADMIN = "kvd-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""
    # user.Info's Extra (an impersonated user's `Impersonate-Extra-*`): (key, values) pairs
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Authenticated:
    user: User
    audiences: tuple[str, ...]  # those of the asked audiences the token is valid for


class InvalidToken(Exception):
    """A token an authenticator recognises as its own, and refuses; the message says why."""


class TokenAuthenticator(Protocol):
    def authenticate_token(self, token: str, audiences: Sequence[str]) -> Authenticated | None:
        """The token's user, for the audiences of `audiences` it was issued for; None when the
        token is not one this authenticator issues (the next one is asked). Raises
        `InvalidToken` for one of its own that is not (or no longer) valid."""
        ...


class Tokens:
    """Every bearer token the server accepts: the admin's, then what `authenticators` accept.
    `audiences` are the server's own (kube's `--api-audiences`)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        audiences: Sequence[str] = (),
        authenticators: Sequence[TokenAuthenticator] = (),
    ) -> None:
        self.path = data_dir / "token"
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        os.chmod(self.path, 0o600)
        self.admin_token = self.path.read_text().strip()
        self.audiences = tuple(audiences)
        self.authenticators = tuple(authenticators)

    def authenticate(self, header: str | None) -> User | None:
        """The user of a request's Authorization header, or None (401)."""
        # kube-apiserver reads the scheme case-insensitively: the official Python client sends
        # "bearer" for a pod's in-cluster token.
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            found = self.review(token.strip())
        except InvalidToken:
            return None
        return found.user

    def review(self, token: str, audiences: Sequence[str] = ()) -> Authenticated:
        """Authenticate `token` for `audiences` (the server's when none are given); raises
        `InvalidToken` saying why not."""
        wanted = tuple(audiences) or self.audiences
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            # a static token knows no audience: valid for the server's own only (kube's
            # audience-agnostic wrapper)
            shared = tuple(a for a in wanted if a in self.audiences)
            if self.audiences and not shared:
                raise InvalidToken(
                    f"token audiences {_quoted(self.audiences)} is invalid for the target "
                    f"audiences {_quoted(wanted)}"
                )
            return Authenticated(User(ADMIN, (MASTERS, AUTHENTICATED), uid=ADMIN), shared)
        for authenticator in self.authenticators:
            found = authenticator.authenticate_token(token, wanted)
            if found is not None:
                return found
        raise InvalidToken("invalid bearer token")

    def review_status(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A TokenReview's status for its `spec` (token, audiences), as kube-apiserver answers."""
        audiences = spec.get("audiences") or ()
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            audiences = ()
        try:
            found = self.review(str(spec.get("token") or ""), audiences)
        except InvalidToken as exc:
            return {"user": {}, "error": str(exc)}
        return {
            "authenticated": True,
            "user": user_info(found.user),
            "audiences": list(found.audiences),
        }


def user_info(user: User) -> dict[str, Any]:
    """kube's UserInfo: a TokenReview's `status.user`, a SelfSubjectReview's `status.userInfo`."""
    out: dict[str, Any] = {"username": user.name, "uid": user.uid, "groups": list(user.groups)}
    if user.extra:  # a service account's pod and credential id, say
        out["extra"] = {key: list(values) for key, values in user.extra}
    return out


def _quoted(values: Sequence[str]) -> str:
    """A list of strings as Go's %q prints a []string."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca: bytes,
    credentials: dict[str, str],
    name: str = "kvd-local",
    user: str = ADMIN,
) -> Path:
    """A kubeconfig for `user` with its `credentials` (`token`, or `client-certificate-data` and
    `client-key-data`), written atomically with mode 0600."""
    cluster = {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": user, "namespace": "default"}}
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
