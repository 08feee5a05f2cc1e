"""What the tokens say: kube's bound service-account claims, the user tokens' claims, and the
checks every token passes before anyone looks at its subject (pure; time is passed in).

A service-account token carries kube's claims: `iss` (the cluster's issuer), `sub`
(`system:serviceaccount:NS:NAME`), `aud`, `exp`, `iat`, `nbf`, `jti`, and the private
`kubernetes.io` claim naming the namespace, the ServiceAccount (name and uid) and what the token
is bound to (a pod, a secret; a pod's node). A user token (`kvd local token`) has another
issuer, so neither can pass for the other; its subject is the user's name and `groups` lists
theirs. Time claims are checked with go-jose's one-minute leeway, as kube-apiserver does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)  # kube-apiserver's --api-audiences default to the issuer
USER_ISSUER = "kvd-local-user-tokens"
PRIVATE = "kubernetes.io"
LEEWAY = 60
SA_PREFIX = "system:serviceaccount:"


class ClaimsError(Exception):
    """Claims that do not make a valid token now; the message says which check failed."""


@dataclass(frozen=True)
class Ref:
    name: str
    uid: str

    def json(self) -> dict[str, str]:
        return {"name": self.name, "uid": self.uid}


def username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def service_account(
    namespace: str,
    account: Ref,
    *,
    audiences: Sequence[str],
    expiration_seconds: int,
    now: int,
    pod: Ref | None = None,
    secret: Ref | None = None,
    node: Ref | None = None,
) -> dict[str, Any]:
    """The claims of a bound service-account token issued at `now` (seconds since the epoch)."""
    private: dict[str, Any] = {"namespace": namespace, "serviceaccount": account.json()}
    if pod is not None:
        private["pod"] = pod.json()
    elif secret is not None:
        private["secret"] = secret.json()
    if node is not None:
        private["node"] = node.json()
    return {
        "aud": list(audiences),
        "exp": now + expiration_seconds,
        "iat": now,
        "iss": ISSUER,
        "jti": str(uuid.uuid4()),
        PRIVATE: private,
        "nbf": now,
        "sub": username(namespace, account.name),
    }


def user(
    name: str, groups: Sequence[str], *, audiences: Sequence[str], seconds: int, now: int
) -> dict[str, Any]:
    """The claims of a user token (`kvd local token`)."""
    return {
        "aud": list(audiences),
        "exp": now + seconds,
        "groups": list(groups),
        "iat": now,
        "iss": USER_ISSUER,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "sub": name,
    }


def check(
    claims: dict[str, Any], *, issuer: str, audiences: Sequence[str], now: float
) -> tuple[str, ...]:
    """Raise ClaimsError unless `claims` are from `issuer`, valid at `now`, and meant for one of
    `audiences`; returns the audiences they share."""
    if claims.get("iss") != issuer:
        raise ClaimsError("token has another issuer")
    expiry, not_before, issued = (_time(claims, c) for c in ("exp", "nbf", "iat"))
    if expiry is None:
        raise ClaimsError("token has no expiry")
    service_account = issuer == ISSUER
    if now - LEEWAY > expiry:
        raise ClaimsError(
            "service account token has expired" if service_account else "token has expired"
        )
    if not_before is not None and now + LEEWAY < not_before:
        raise ClaimsError(
            "service account token is not valid yet"
            if service_account
            else "token is not valid yet"
        )
    if issued is not None and now + LEEWAY < issued:
        raise ClaimsError("token issued in the future")
    given = claims.get("aud")
    token_audiences = [given] if isinstance(given, str) else given
    if not isinstance(token_audiences, list) or not all(
        isinstance(a, str) for a in token_audiences
    ):
        raise ClaimsError("token audiences are malformed")
    shared = tuple(a for a in audiences if a in token_audiences)
    if not shared:
        raise ClaimsError(
            f"token audiences {_quoted(token_audiences)} is invalid for the target audiences "
            f"{_quoted(audiences)}"
        )
    return shared


def _time(claims: dict[str, Any], claim: str) -> float | None:
    value = claims.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimsError(f"token claim {claim} is not a number")
    return float(value)


@dataclass(frozen=True)
class Bound:
    """What a service-account token's private claim names."""

    namespace: str
    account: Ref
    pod: Ref | None
    secret: Ref | None
    node: Ref | None


def bound(claims: dict[str, Any]) -> Bound:
    """The private claim of a (verified) service-account token, checked for shape."""
    private = claims.get(PRIVATE)
    if not isinstance(private, dict):
        raise ClaimsError("token has no kubernetes.io claim")
    namespace = private.get("namespace")
    account = _ref(private.get("serviceaccount"))
    if not isinstance(namespace, str) or not namespace or account is None:
        raise ClaimsError("token names no service account")
    if claims.get("sub") != username(namespace, account.name):
        raise ClaimsError("token subject does not match its service account")
    refs = {key: _ref(private.get(key)) for key in ("pod", "secret", "node")}
    for key, ref in refs.items():
        if private.get(key) is not None and ref is None:
            raise ClaimsError(f"token's {key} claim is malformed")
    return Bound(namespace, account, refs["pod"], refs["secret"], refs["node"])


def _ref(value: Any) -> Ref | None:
    if not isinstance(value, dict):
        return None
    name, uid = value.get("name"), value.get("uid")
    if not isinstance(name, str) or not name or not isinstance(uid, str):
        return None
    return Ref(name, uid)


def _quoted(values: Sequence[str]) -> str:
    """A list of strings as Go's %q prints a []string."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"
