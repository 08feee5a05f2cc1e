"""Service-account and user tokens end to end in-process: signed by the key, checked by the
authenticator against a real store (objects written straight into it), on a fake clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kvd.local.apiserver import auth, errors, serviceaccounts
from kvd.local.apiserver.auth import InvalidToken
from kvd.local.apiserver.serviceaccounts import claims, jwt
from kvd.local.apiserver.store import ResourceKey, Store
from tests.support.clock import FakeClock

NOW = 1_800_000_000.0
API = claims.API_AUDIENCES


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def accounts(tmp_path: Path, store: Store, clock: FakeClock) -> serviceaccounts.ServiceAccounts:
    return serviceaccounts.ServiceAccounts(tmp_path, store, clock=clock)


def _put(store: Store, plural: str, namespace: str, name: str, uid: str, **rest: Any) -> None:
    key = ResourceKey("", plural)
    if store.get(key, namespace, name) is not None:
        store.delete(key, namespace, name)
    metadata = {"name": name, "uid": uid, **({"namespace": namespace} if namespace else {})}
    store.create(key, namespace, name, {"metadata": metadata, **rest})


def _tokens(tmp_path: Path, accounts: serviceaccounts.ServiceAccounts) -> auth.Tokens:
    return auth.Tokens(tmp_path, audiences=API, authenticators=(accounts.authenticator,))


def _request(
    accounts: serviceaccounts.ServiceAccounts, name: str = "robot", **spec: Any
) -> dict[str, Any]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return accounts.token_request("ns", name, body)


def _refused(tokens: auth.Tokens, token: str, audiences: tuple[str, ...] = ()) -> str:
    with pytest.raises(InvalidToken) as caught:
        tokens.review(token, audiences)
    return str(caught.value)


def _resign(key: jwt.SigningKey, token: str, **changes: Any) -> str:
    """The token's claims with `changes` (None removes one), signed again by `key`."""
    body = key.verify(token)
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return key.sign(body)


def test_a_requested_token_names_its_account_and_is_accepted(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    answer = _request(accounts)
    assert answer["status"]["expirationTimestamp"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + 3600)
    )
    assert answer["spec"]["audiences"] == list(API)
    body = accounts.key.verify(answer["status"]["token"])
    assert body["sub"] == "system:serviceaccount:ns:robot"
    assert body["kubernetes.io"] == {
        "namespace": "ns",
        "serviceaccount": {"name": "robot", "uid": "sa-1"},
    }
    assert (body["iss"], body["aud"], body["iat"], body["nbf"], body["exp"]) == (
        claims.ISSUER,
        list(API),
        NOW,
        NOW,
        NOW + 3600,
    )

    found = _tokens(tmp_path, accounts).review(answer["status"]["token"])
    assert found.audiences == API
    assert auth.user_info(found.user) == {
        "username": "system:serviceaccount:ns:robot",
        "uid": "sa-1",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={body['jti']}"]},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"exp": NOW - 61}, "service account token has expired", id="expired"),
        pytest.param({"nbf": NOW + 61}, "service account token is not valid yet", id="nbf-future"),
        pytest.param({"iat": NOW + 61}, "token issued in the future", id="iat-future"),
        pytest.param({"exp": None}, "token has no expiry", id="no-expiry"),
        pytest.param({"exp": "soon"}, "token claim exp is not a number", id="exp-not-a-number"),
        pytest.param(
            {"aud": ["elsewhere"]},
            'token audiences ["elsewhere"] is invalid for the target audiences '
            f'["{claims.ISSUER}"]',
            id="wrong-audience",
        ),
        pytest.param(
            {"sub": "system:serviceaccount:ns:other"},
            "token subject does not match its service account",
            id="subject-not-the-account",
        ),
    ],
)
def test_claims_that_do_not_hold_now_are_refused(
    tmp_path: Path,
    store: Store,
    accounts: serviceaccounts.ServiceAccounts,
    change: dict[str, Any],
    message: str,
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    token = _request(accounts)["status"]["token"]
    assert _refused(_tokens(tmp_path, accounts), _resign(accounts.key, token, **change)) == message


def test_time_has_kubes_minute_of_leeway(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts, clock: FakeClock
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    token = _request(accounts, expirationSeconds=600)["status"]["token"]
    tokens = _tokens(tmp_path, accounts)
    clock.advance(600 + 60)
    assert tokens.review(token).user.name == "system:serviceaccount:ns:robot"
    clock.advance(1)
    assert _refused(tokens, token) == "service account token has expired"


def test_a_token_of_another_issuer_is_not_ours_even_when_signed(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    token = _request(accounts)["status"]["token"]
    forged = _resign(accounts.key, token, iss="https://elsewhere.example")
    assert accounts.authenticator.authenticate_token(forged, API) is None
    assert _refused(_tokens(tmp_path, accounts), forged) == "invalid bearer token"


def test_a_tampered_payload_fails_the_signature(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    _put(store, "serviceaccounts", "ns", "admin", "sa-2")
    header, payload, signature = _request(accounts)["status"]["token"].split(".")
    body = json.loads(jwt.b64decode(payload))
    body["kubernetes.io"]["serviceaccount"] = {"name": "admin", "uid": "sa-2"}
    body["sub"] = "system:serviceaccount:ns:admin"
    tampered = f"{header}.{jwt.b64encode(json.dumps(body).encode())}.{signature}"
    assert _refused(_tokens(tmp_path, accounts), tampered) == "invalid signature"
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    assert _refused(_tokens(tmp_path, accounts), f"{header}.{payload}.{flipped}") == (
        "invalid signature"
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param({"alg": "none"}, "unexpected signing algorithm 'none'", id="none"),
        pytest.param({"alg": "HS256"}, "unexpected signing algorithm 'HS256'", id="hs256"),
        pytest.param({"alg": "RS256"}, "unexpected signing algorithm 'RS256'", id="rs256"),
        pytest.param({"alg": "ES256", "kid": "other"}, "signed by another key", id="other-kid"),
        pytest.param(
            {"alg": "ES256", "crit": ["exp"]},
            "unsupported critical header extensions",
            id="crit",
        ),
    ],
)
def test_a_header_naming_another_algorithm_or_key_is_refused(
    tmp_path: Path,
    store: Store,
    accounts: serviceaccounts.ServiceAccounts,
    header: dict[str, Any],
    message: str,
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    _, payload, signature = _request(accounts)["status"]["token"].split(".")
    forged_header = jwt.b64encode(json.dumps(header).encode())
    for sig in (signature, ""):  # `none` comes with an empty signature
        forged = f"{forged_header}.{payload}.{sig}"
        assert message in _refused(_tokens(tmp_path, accounts), forged)


def test_a_deleted_account_or_one_made_again_revokes_its_tokens(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    token = _request(accounts)["status"]["token"]
    tokens = _tokens(tmp_path, accounts)
    store.delete(ResourceKey("", "serviceaccounts"), "ns", "robot")
    assert _refused(tokens, token) == 'serviceaccounts "robot" not found'
    _put(store, "serviceaccounts", "ns", "robot", "sa-2")
    assert _refused(tokens, token) == "service account UID (sa-2) does not match claim (sa-1)"
    assert tokens.review(_request(accounts)["status"]["token"]).user.uid == "sa-2"


def test_a_pod_bound_token_lives_as_long_as_its_pod(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts, clock: FakeClock
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    _put(store, "nodes", "", "node-1", "node-uid")
    _put(
        store,
        "pods",
        "ns",
        "p",
        "pod-1",
        spec={"serviceAccountName": "robot", "nodeName": "node-1"},
    )
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pod-1"}
    token = _request(accounts, boundObjectRef=ref)["status"]["token"]
    assert accounts.key.verify(token)["kubernetes.io"]["pod"] == {"name": "p", "uid": "pod-1"}
    tokens = _tokens(tmp_path, accounts)
    extra = dict(tokens.review(token).user.extra)
    assert extra["authentication.kubernetes.io/pod-name"] == ("p",)
    assert extra["authentication.kubernetes.io/pod-uid"] == ("pod-1",)
    assert extra["authentication.kubernetes.io/node-name"] == ("node-1",)
    assert extra["authentication.kubernetes.io/node-uid"] == ("node-uid",)

    # a pod shutting down keeps its token a minute, as kube's validator allows
    pod = store.get(ResourceKey("", "pods"), "ns", "p")
    assert pod is not None
    pod["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))
    store.update(ResourceKey("", "pods"), "ns", "p", pod, expected=None)
    assert tokens.review(token).user.name == "system:serviceaccount:ns:robot"
    clock.advance(61)
    assert _refused(tokens, token) == "service account token has been invalidated"

    store.delete(ResourceKey("", "pods"), "ns", "p")
    assert _refused(tokens, token) == "service account token has been invalidated"
    _put(store, "pods", "ns", "p", "pod-2", spec={"serviceAccountName": "robot"})
    assert _refused(tokens, token) == (
        "pod UID (pod-2) does not match service account pod ref claim (pod-1)"
    )


def test_a_secret_bound_token_dies_with_its_secret(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    _put(store, "secrets", "ns", "s", "secret-1")
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "s"}
    token = _request(accounts, boundObjectRef=ref)["status"]["token"]
    tokens = _tokens(tmp_path, accounts)
    assert tokens.review(token).user.name == "system:serviceaccount:ns:robot"
    store.delete(ResourceKey("", "secrets"), "ns", "s")
    assert _refused(tokens, token) == "service account token has been invalidated"


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        pytest.param(
            {"expirationSeconds": 599},
            422,
            'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid '
            "value: 599: may not specify a duration less than 10 minutes",
            id="too-short",
        ),
        pytest.param(
            {"audiences": "vault"},
            400,
            "spec.audiences must be a list of strings",
            id="audiences-not-a-list",
        ),
        pytest.param(
            {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "gone"}},
            404,
            'pods "gone" not found',
            id="missing-pod",
        ),
        pytest.param(
            {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "old"}},
            409,
            'Operation cannot be fulfilled on Pod "p": the UID in the bound object reference '
            "(old) does not match the UID in record. The object might have been deleted and then "
            "recreated",
            id="pod-uid-mismatch",
        ),
        pytest.param(
            {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "other-sa"}},
            400,
            'cannot bind token for serviceaccount "robot" to pod running with different '
            "serviceaccount name.",
            id="pod-of-another-account",
        ),
        pytest.param(
            {"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}},
            400,
            'cannot bind token for serviceaccount "robot" to object of type apps/v1, '
            "Kind=Deployment",
            id="unbindable-kind",
        ),
    ],
)
def test_token_requests_kube_refuses_are_refused_as_kube_does(
    store: Store,
    accounts: serviceaccounts.ServiceAccounts,
    spec: dict[str, Any],
    code: int,
    message: str,
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    _put(store, "pods", "ns", "p", "pod-1", spec={"serviceAccountName": "robot"})
    _put(store, "pods", "ns", "other-sa", "pod-2", spec={"serviceAccountName": "default"})
    with pytest.raises(errors.APIError) as caught:
        _request(accounts, **spec)
    assert (caught.value.code, str(caught.value.status()["message"])) == (code, message)


def test_a_request_for_a_missing_account_is_404(accounts: serviceaccounts.ServiceAccounts) -> None:
    with pytest.raises(errors.APIError) as caught:
        _request(accounts, name="ghost")
    assert caught.value.code == 404
    assert caught.value.status()["message"] == 'serviceaccounts "ghost" not found'


def test_token_review_audiences_are_the_intersection(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts
) -> None:
    _put(store, "serviceaccounts", "ns", "robot", "sa-1")
    token = _request(accounts, audiences=["vault", "kvd"])["status"]["token"]
    tokens = _tokens(tmp_path, accounts)
    status = tokens.review_status({"token": token, "audiences": ["kvd", "other"]})
    assert status["authenticated"] and status["audiences"] == ["kvd"]
    refused = tokens.review_status({"token": token})  # the API server's own: not among them
    assert refused == {
        "user": {},
        "error": f'token audiences ["vault" "kvd"] is invalid for the target audiences '
        f'["{claims.ISSUER}"]',
    }
    admin = tokens.review_status({"token": tokens.admin_token})
    assert admin["audiences"] == list(API) and admin["user"]["username"] == auth.ADMIN
    assert "error" in tokens.review_status({"token": tokens.admin_token, "audiences": ["kvd"]})


def test_user_tokens_carry_their_groups_and_never_pass_for_an_account(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts, clock: FakeClock
) -> None:
    token = serviceaccounts.user_token(tmp_path, "alice", ["dev"], seconds=3600, now=NOW)
    tokens = _tokens(tmp_path, accounts)
    user = tokens.review(token).user
    assert (user.name, user.groups) == ("alice", ("dev", "system:authenticated"))
    assert accounts.key.verify(token)["iss"] == claims.USER_ISSUER

    posing = _resign(accounts.key, token, sub="system:serviceaccount:ns:robot")
    assert _refused(tokens, posing) == "a user token cannot name a service account"
    with pytest.raises(ValueError, match="is a service account"):
        serviceaccounts.user_token(tmp_path, "system:serviceaccount:ns:robot", seconds=60)
    clock.advance(3600 + 61)
    assert _refused(tokens, token) == "token has expired"


def test_the_key_is_made_once_private_and_an_rsa_key_signs_rs256(tmp_path: Path) -> None:
    made = jwt.SigningKey.load_or_create(tmp_path)
    path = tmp_path / jwt.KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert jwt.SigningKey.load_or_create(tmp_path).kid == made.kid
    assert made.alg == "ES256" and made.jwk()["kid"] == made.kid

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key = jwt.SigningKey.load(tmp_path)
    assert key.alg == "RS256" and key.jwk()["kty"] == "RSA"
    token = key.sign({"hello": "world"})
    assert key.verify(token) == {"hello": "world"}
    with pytest.raises(jwt.JWTError, match="unexpected signing algorithm 'RS256'"):
        made.verify(token)


def test_issue_is_callable_in_process(
    tmp_path: Path, store: Store, accounts: serviceaccounts.ServiceAccounts
) -> None:
    _put(store, "serviceaccounts", "kvd", "controller", "sa-9")
    token = accounts.issue("kvd", "controller", audiences=["kvd-handler"])
    found = _tokens(tmp_path, accounts).review(token, ["kvd-handler"])
    assert found.user.name == "system:serviceaccount:kvd:controller"
    with pytest.raises(LookupError):
        accounts.issue("kvd", "nobody")
