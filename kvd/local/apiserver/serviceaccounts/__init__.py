"""ServiceAccounts with real tokens, as kube-apiserver and kube-controller-manager make them.

- `jwt`: the signing key (DATA_DIR/pki/sa.key) and compact JWS, ES256/RS256, written here.
- `claims`: kube's bound-token claims and user-token claims; the time/issuer/audience checks.
- `authenticator`: the token authenticator the server's `auth.Tokens` tries after the admin's.
- `tokenrequest`: `POST …/serviceaccounts/NAME/token` (kubectl create token); `issue()`.
- `controller`: the `default` ServiceAccount and `kube-root-ca.crt` in every namespace.
- `admission`: the ServiceAccount admission plugin (account defaulted and checked, token volume).
- `discovery`: /.well-known/openid-configuration and /openid/v1/jwks.

`ServiceAccounts` wires them for one server; `user_token()` mints a `kvd local token` from the
key file alone, for a server running or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kvd.local.apiserver.serviceaccounts import authenticator, claims, jwt, tokenrequest
from kvd.local.apiserver.serviceaccounts.claims import API_AUDIENCES, ISSUER
from kvd.local.apiserver.store import Store

__all__ = ["API_AUDIENCES", "ISSUER", "ServiceAccounts", "user_token"]


class ServiceAccounts:
    """The server's service-account tokens: its key, the authenticator, TokenRequest."""

    def __init__(
        self, data_dir: Path, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.key = jwt.SigningKey.load_or_create(data_dir)
        self.store = store
        self.clock = clock
        self.authenticator = authenticator.Authenticator(self.key, store.get, clock=clock)

    def token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """The answer to a TokenRequest for `namespace/name` (APIError for a refusal)."""
        return tokenrequest.create(
            self.key, self.store.get, namespace, name, body, clock=self.clock
        )

    def issue(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Sequence[str] = API_AUDIENCES,
        expiration_seconds: int = tokenrequest.DEFAULT_EXPIRATION,
    ) -> str:
        """A token for the stored ServiceAccount `namespace/name`, in-process (LookupError when
        it does not exist)."""
        account = self.store.get(authenticator.SERVICEACCOUNTS, namespace, name)
        if account is None:
            raise LookupError(f'serviceaccounts "{name}" not found in namespace {namespace}')
        token, _ = tokenrequest.issue(
            self.key,
            account,
            audiences=audiences,
            expiration_seconds=expiration_seconds,
            now=self.clock(),
        )
        return token


def user_token(
    data_dir: Path,
    user: str,
    groups: Sequence[str] = (),
    *,
    seconds: int,
    now: float | None = None,
) -> str:
    """A token for `user` in `groups` (and system:authenticated), valid for `seconds`, signed
    with the key in `data_dir` (jwt.KeyMissing when the API server never ran there)."""
    if not user:
        raise ValueError("a user token needs a user name")
    if user.startswith(claims.SA_PREFIX):
        raise ValueError(
            f"{user!r} is a service account: ask the API server for its token "
            "(kubectl create token)"
        )
    if seconds <= 0:
        raise ValueError("a token's duration must be positive")
    key = jwt.SigningKey.load(data_dir)
    issued = int(time.time() if now is None else now)
    return key.sign(claims.user(user, groups, audiences=API_AUDIENCES, seconds=seconds, now=issued))
