"""Who a signed token belongs to: kube's service-account token validator, and user tokens.

A token is this authenticator's when it is a JWT whose (unverified) issuer is one of the two
this cluster signs for; anything else is left to the next authenticator, as kube's JWT
authenticator leaves tokens of other issuers. One of ours must then carry this key's signature,
be valid now and be meant for an audience asked. A service-account token must, on top, still
name a live object, as kube's validator insists: the ServiceAccount with the uid it was issued
for (one deleted and made again is another account), and the pod or secret it is bound to
(a node for a node-bound one), with its uid — so deleting a pod revokes its tokens.

The user is kube's: `system:serviceaccount:NS:NAME` in `system:serviceaccounts`,
`system:serviceaccounts:NS` and `system:authenticated`, uid the account's, with the extra kube
adds (pod name and uid, node name and uid, `credential-id` `JTI=<jti>`).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any

from kvd.local.apiserver import auth
from kvd.local.apiserver.auth import Authenticated, InvalidToken, User
from kvd.local.apiserver.serviceaccounts import claims, jwt
from kvd.local.apiserver.serviceaccounts.claims import ClaimsError, Ref
from kvd.local.apiserver.store import ResourceKey

Getter = Callable[[ResourceKey, str, str], dict[str, Any] | None]
"""(resource, namespace, name) → the stored object, or None (`Store.get`)."""

SERVICEACCOUNTS = ResourceKey("", "serviceaccounts")
PODS = ResourceKey("", "pods")
SECRETS = ResourceKey("", "secrets")
NODES = ResourceKey("", "nodes")
GROUP = "system:serviceaccounts"
EXTRA = "authentication.kubernetes.io/"


class Authenticator:
    def __init__(
        self, key: jwt.SigningKey, get: Getter, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.key = key
        self.get = get
        self.clock = clock

    def authenticate_token(self, token: str, audiences: Sequence[str]) -> Authenticated | None:
        try:
            issuer = jwt.unverified_claims(token).get("iss")
        except jwt.JWTError:
            return None  # not a JWT at all: someone else's, or nobody's
        if issuer not in (claims.ISSUER, claims.USER_ISSUER):
            return None
        try:
            verified = self.key.verify(token)
            shared = claims.check(
                verified, issuer=str(issuer), audiences=audiences, now=self.clock()
            )
            service_account = issuer == claims.ISSUER
            user = self._service_account(verified) if service_account else _user(verified)
        except (jwt.JWTError, ClaimsError) as exc:
            raise InvalidToken(str(exc)) from None
        return Authenticated(user, shared)

    def _service_account(self, verified: dict[str, Any]) -> User:
        b = claims.bound(verified)
        ns, name = b.namespace, b.account.name
        account = self.get(SERVICEACCOUNTS, ns, name)
        if account is None:
            raise ClaimsError(f'serviceaccounts "{name}" not found')
        if _deleted(account, before=self.clock() - claims.LEEWAY):
            raise ClaimsError(f"service account {ns}/{name} has been deleted")
        if account["metadata"].get("uid") != b.account.uid:
            raise ClaimsError(
                f"service account UID ({account['metadata'].get('uid')}) does not match claim "
                f"({b.account.uid})"
            )
        extra: list[tuple[str, tuple[str, ...]]] = []
        for key, ref, what in (
            (SECRETS, b.secret, "secret"),
            (PODS, b.pod, "pod"),
        ):
            if ref is None:
                continue
            self._still_bound(key, ns, ref, what)
            if what == "pod":
                extra += [(f"{EXTRA}pod-name", (ref.name,)), (f"{EXTRA}pod-uid", (ref.uid,))]
        if b.node is not None:
            if b.pod is None and b.secret is None:  # bound to the node itself
                self._still_bound(NODES, "", b.node, "node")
            extra += [
                (f"{EXTRA}node-name", (b.node.name,)),
                (f"{EXTRA}node-uid", (b.node.uid,)),
            ]
        jti = verified.get("jti")
        if isinstance(jti, str) and jti:
            extra.append((f"{EXTRA}credential-id", (f"JTI={jti}",)))
        return User(
            claims.username(ns, name),
            (GROUP, f"{GROUP}:{ns}", auth.AUTHENTICATED),
            uid=b.account.uid,
            extra=tuple(sorted(extra)),
        )

    def _still_bound(self, key: ResourceKey, namespace: str, ref: Ref, what: str) -> None:
        obj = self.get(key, namespace, ref.name)
        if obj is None or _deleted(obj, before=self.clock() - claims.LEEWAY):
            raise ClaimsError("service account token has been invalidated")
        uid = obj["metadata"].get("uid")
        if uid != ref.uid:
            raise ClaimsError(
                f"{what} UID ({uid}) does not match service account {what} ref claim ({ref.uid})"
            )


def _deleted(obj: dict[str, Any], *, before: float) -> bool:
    """Marked for deletion earlier than `before` (kube's leeway: a pod still shutting down keeps
    its tokens for a minute)."""
    stamp = obj["metadata"].get("deletionTimestamp")
    if not stamp:
        return False
    marked = datetime.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ")
    return marked.replace(tzinfo=datetime.UTC).timestamp() < before


def _user(verified: dict[str, Any]) -> User:
    name = verified.get("sub")
    if not isinstance(name, str) or not name:
        raise ClaimsError("token has no subject")
    if name.startswith(claims.SA_PREFIX):
        raise ClaimsError("a user token cannot name a service account")
    groups = verified.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ClaimsError("token groups are malformed")
    jti = verified.get("jti")
    extra = ((f"{EXTRA}credential-id", (f"JTI={jti}",)),) if isinstance(jti, str) and jti else ()
    everyone = tuple(dict.fromkeys([*groups, auth.AUTHENTICATED]))
    return User(name, everyone, extra=extra)
