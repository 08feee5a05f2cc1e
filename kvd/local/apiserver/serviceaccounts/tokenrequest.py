"""The TokenRequest API: `POST …/serviceaccounts/NAME/token`, as kube-apiserver's token REST.

The request's metadata, when given, must name the account of the URL; the account must exist
(404 otherwise, kube's message); `spec.audiences` default to the API server's,
`spec.expirationSeconds` to an hour, and less than ten minutes is refused (422, kube's
validation). A `boundObjectRef` names a Pod (which must run as this account), a Secret or a
Node in the namespace, which must exist, with the uid given if one is (409 otherwise, as kube);
a pod-bound token also names the pod's node. The answer is the request with its status: the
token, and when it expires.

`issue` is the same signing, callable in-process for a ServiceAccount object at hand.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any

from kvd.local.apiserver import errors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.serviceaccounts import claims, jwt
from kvd.local.apiserver.serviceaccounts.authenticator import (
    NODES,
    PODS,
    SECRETS,
    SERVICEACCOUNTS,
    Getter,
)
from kvd.local.apiserver.serviceaccounts.claims import Ref

GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"
KIND = "TokenRequest"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32


def issue(
    key: jwt.SigningKey,
    account: dict[str, Any],
    *,
    audiences: Sequence[str] = claims.API_AUDIENCES,
    expiration_seconds: int = DEFAULT_EXPIRATION,
    pod: dict[str, Any] | None = None,
    secret: dict[str, Any] | None = None,
    node: dict[str, Any] | None = None,
    now: float | None = None,
) -> tuple[str, int]:
    """(token, expiry in seconds since the epoch) for the stored ServiceAccount `account`,
    bound to `pod`, `secret` or `node` when given."""
    issued = int(time.time() if now is None else now)
    meta = account["metadata"]
    body = claims.service_account(
        meta["namespace"],
        _ref(account),
        audiences=audiences,
        expiration_seconds=expiration_seconds,
        now=issued,
        pod=_ref(pod) if pod is not None else None,
        secret=_ref(secret) if secret is not None else None,
        node=_ref(node) if node is not None else None,
    )
    return key.sign(body), issued + expiration_seconds


def create(
    key: jwt.SigningKey,
    get: Getter,
    namespace: str,
    name: str,
    body: Any,
    *,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Answer a TokenRequest for ServiceAccount `namespace/name` (APIError for a refusal)."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be an object")
    _check_type(body)
    metadata = body.get("metadata") or {}
    spec = dict(body.get("spec") or {})
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise errors.bad_request("metadata and spec must be objects")
    for field, given, expected, what in (
        ("name", metadata.get("name"), name, "name"),
        ("namespace", metadata.get("namespace"), namespace, "namespace"),
    ):
        if given not in (None, "", expected):
            message = (
                f"Invalid value: {_go(given)}: must match the service account {what} if specified"
            )
            raise _invalid(name, [Cause("FieldValueInvalid", message, f"metadata.{field}")])
    account = get(SERVICEACCOUNTS, namespace, name)
    if account is None:
        raise errors.not_found("", "serviceaccounts", name)
    audiences = spec.get("audiences") or list(claims.API_AUDIENCES)
    if not isinstance(audiences, list):
        raise errors.bad_request("spec.audiences must be a list of strings")
    spec["audiences"] = audiences
    spec.setdefault("expirationSeconds", DEFAULT_EXPIRATION)
    now = clock()
    _validate(spec)
    pod, secret, node = _bound(get, namespace, name, spec.get("boundObjectRef"))
    token, expires = issue(
        key,
        account,
        audiences=spec["audiences"],
        expiration_seconds=int(spec["expirationSeconds"]),
        pod=pod,
        secret=secret,
        node=node,
        now=now,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            **metadata,
            "name": name,
            "namespace": namespace,
            "creationTimestamp": _stamp(now),
        },
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": _stamp(expires)},
    }


def _check_type(body: dict[str, Any]) -> None:
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if api_version not in (None, "", API_VERSION) or kind not in (None, "", KIND):
        raise errors.bad_request(
            f"the body of the request must be a {API_VERSION} {KIND}, not {api_version} {kind}"
        )


def _validate(spec: dict[str, Any]) -> None:
    """kube's ValidateTokenRequest."""
    causes = []
    seconds = spec["expirationSeconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.bad_request("spec.expirationSeconds must be an integer")
    if seconds < MIN_EXPIRATION:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                "spec.expirationSeconds",
            )
        )
    elif seconds > MAX_EXPIRATION:
        causes.append(
            Cause(
                "FieldValueTooLong",
                f"Too long: may not have more than {MAX_EXPIRATION} bytes",
                "spec.expirationSeconds",
            )
        )
    audiences = spec["audiences"]
    if not all(isinstance(a, str) and a for a in audiences):
        raise errors.bad_request("spec.audiences must be non-empty strings")
    if causes:
        raise _invalid("", causes)


def _bound(
    get: Getter, namespace: str, name: str, ref: Any
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """(pod, secret, node) the token is bound to, checked as kube checks them."""
    if not ref:
        return None, None, None
    if not isinstance(ref, dict):
        raise errors.bad_request("spec.boundObjectRef must be an object")
    kind, api_version = ref.get("kind") or "", ref.get("apiVersion") or ""
    target = str(ref.get("name") or "")
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    pod = secret = node = None
    if group == "" and kind == "Pod":
        pod = _get_or_404(get, PODS, namespace, target, "pods")
        if (pod.get("spec") or {}).get("serviceAccountName") != name:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{name}" to pod running with different '
                "serviceaccount name."
            )
        found = pod
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            node = get(NODES, "", node_name)  # a node gone meanwhile: no node claim, as kube
    elif group == "" and kind == "Secret":
        secret = found = _get_or_404(get, SECRETS, namespace, target, "secrets")
    elif group == "" and kind == "Node":
        node = found = _get_or_404(get, NODES, "", target, "nodes")
    else:
        shown = f"{api_version}, Kind={kind}" if api_version else f"/, Kind={kind}"
        raise errors.bad_request(
            f'cannot bind token for serviceaccount "{name}" to object of type {shown}'
        )
    uid = ref.get("uid")
    if uid and uid != found["metadata"].get("uid"):
        raise errors.conflict(
            "",
            kind,
            target,
            f"the UID in the bound object reference ({uid}) does not match the UID in record. "
            "The object might have been deleted and then recreated",
        )
    return pod, secret, node


def _get_or_404(get: Getter, key: Any, namespace: str, name: str, plural: str) -> dict[str, Any]:
    obj = get(key, namespace, name)
    if obj is None:
        raise errors.not_found("", plural, name)
    return obj


def _invalid(name: str, causes: list[Cause]) -> errors.APIError:
    return errors.invalid(GROUP, KIND, name, causes)


def _ref(obj: dict[str, Any]) -> Ref:
    return Ref(obj["metadata"]["name"], str(obj["metadata"].get("uid") or ""))


def _stamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(int(seconds), datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _go(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)
