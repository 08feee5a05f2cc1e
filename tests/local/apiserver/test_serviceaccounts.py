"""ServiceAccounts as kubectl sees them on a real local API server: `kubectl create token`,
tokens used as credentials (`kubectl --token … auth whoami`), TokenReview, the per-namespace
objects kube's controllers make, the ServiceAccount admission plugin, issuer discovery, and
`kvd local token`."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kvd.local.apiserver.serviceaccounts import claims, jwt
from tests.local.apiserver.conftest import KVD, Server
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # each starts an API server

ISSUER = claims.ISSUER
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def _whoami(server: Server, token: str) -> subprocess.CompletedProcess[str]:
    return server.kubectl("--token", token, "auth", "whoami", "-o", "json", check=False)


def _user(server: Server, token: str) -> dict[str, Any]:
    done = _whoami(server, token)
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)["status"]["userInfo"]
    return info


def _pod(name: str, **spec: Any) -> str:
    container = {"name": "c", "image": "busybox", "command": ["sleep", "1"]}
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }
    return json.dumps(body)


def test_every_namespace_has_a_default_account_and_the_root_ca(server: Server) -> None:
    server.kubectl("create", "namespace", "fresh")
    ca = (server.data_dir / "pki" / "ca.crt").read_text()

    def published() -> dict[str, Any] | None:
        done = server.kubectl(
            "get", "-n", "fresh", "configmap", "kube-root-ca.crt", "-o", "json", check=False
        )
        return json.loads(done.stdout) if done.returncode == 0 else None

    cm = wait_for("kube-root-ca.crt in namespace fresh", published, timeout=10)
    assert cm["data"] == {"ca.crt": ca}
    accounts = server.kubectl("get", "serviceaccounts", "-A", "-o", "name").stdout.split()
    namespaces = server.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert len(accounts) == len(namespaces)
    assert set(accounts) == {"serviceaccount/default"}

    # kube's controllers put back what is taken away
    server.kubectl("delete", "-n", "fresh", "serviceaccount", "default")
    wait_for(
        "the default ServiceAccount to be made again",
        lambda: server.kubectl("get", "-n", "fresh", "sa", "default", check=False).returncode == 0,
        timeout=10,
    )
    server.kubectl(
        "patch",
        "-n",
        "fresh",
        "configmap",
        "kube-root-ca.crt",
        "--type=merge",
        "-p",
        '{"data":{"ca.crt":"forged"}}',
    )
    wait_for(
        "the CA to be restored",
        lambda: (published() or {}).get("data", {}).get("ca.crt") == ca,
        timeout=10,
    )


def test_kubectl_create_token_and_using_it(server: Server) -> None:
    server.kubectl("create", "serviceaccount", "robot")
    token = server.kubectl("create", "token", "robot").stdout.strip()
    uid = server.kubectl("get", "sa", "robot", "-o", "jsonpath={.metadata.uid}").stdout
    user = _user(server, token)
    assert user["username"] == "system:serviceaccount:default:robot"
    assert user["uid"] == uid
    assert user["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]
    # authenticated, and RBAC (not authentication) decides what it may do: never 401
    listed = server.kubectl("--token", token, "get", "pods", check=False)
    assert "Forbidden" in listed.stderr and "Unauthorized" not in listed.stderr

    # audience and duration, as asked
    other = server.kubectl("create", "token", "robot", "--audience", "vault", "--duration", "15m")
    body = json.loads(jwt.b64decode(other.stdout.strip().split(".")[1]))
    assert body["aud"] == ["vault"] and body["exp"] - body["iat"] == 900
    assert "Unauthorized" in _whoami(server, other.stdout.strip()).stderr  # not the API's

    missing = server.kubectl("create", "token", "ghost", check=False)
    assert missing.returncode == 1
    assert 'serviceaccounts "ghost" not found' in missing.stderr
    short = server.kubectl("create", "token", "robot", "--duration", "5m", check=False)
    assert "may not specify a duration less than 10 minutes" in short.stderr

    # deleting the account revokes its tokens
    server.kubectl("delete", "sa", "robot")
    assert "Unauthorized" in _whoami(server, token).stderr


def test_a_pod_bound_token_dies_with_its_pod(server: Server) -> None:
    server.kubectl("create", "-f", "-", stdin=_pod("holder"))
    token = server.kubectl(
        "create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name", "holder"
    ).stdout.strip()
    pod_uid = server.kubectl("get", "pod", "holder", "-o", "jsonpath={.metadata.uid}").stdout
    user = _user(server, token)
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["holder"]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [pod_uid]
    server.kubectl("delete", "pod", "holder", "--grace-period=0", "--force")
    assert "Unauthorized" in _whoami(server, token).stderr


def test_token_review_with_audiences(server: Server) -> None:
    token = server.kubectl(
        "create", "token", "default", "--audience", "kvd", "--audience", ISSUER
    ).stdout.strip()

    def review(*audiences: str) -> dict[str, Any]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, **({"audiences": list(audiences)} if audiences else {})},
        }
        done = server.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(body))
        status: dict[str, Any] = json.loads(done.stdout)["status"]
        return status

    assert review("kvd", "other")["audiences"] == ["kvd"]
    assert review()["audiences"] == [ISSUER]  # the API server's own
    refused = review("other")
    assert "authenticated" not in refused
    assert refused["error"] == (
        f'token audiences ["kvd" "{ISSUER}"] is invalid for the target audiences ["other"]'
    )


def test_pods_run_as_an_account_with_kubes_token_volume(server: Server) -> None:
    server.kubectl(
        "create", "-f", "-", stdin=_pod("plain", initContainers=[{"name": "i", "image": "busybox"}])
    )
    pod = json.loads(server.kubectl("get", "pod", "plain", "-o", "json").stdout)
    spec = pod["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("default", "default")
    (volume,) = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert volume["projected"] == {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }
    mount = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT}
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["initContainers"][0]["volumeMounts"] == [mount]

    refused = server.kubectl(
        "create", "-f", "-", stdin=_pod("lost", serviceAccountName="ghost"), check=False
    )
    assert refused.returncode == 1
    assert (
        'pods "lost" is forbidden: error looking up service account default/ghost: '
        'serviceaccount "ghost" not found'
    ) in refused.stderr

    server.kubectl("create", "-f", "-", stdin=_pod("bare", automountServiceAccountToken=False))
    bare = json.loads(server.kubectl("get", "pod", "bare", "-o", "json").stdout)["spec"]
    assert "volumes" not in bare and "volumeMounts" not in bare["containers"][0]

    quiet = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "quiet"},
        "automountServiceAccountToken": False,
    }
    server.kubectl("create", "-f", "-", stdin=json.dumps(quiet))
    server.kubectl("create", "-f", "-", stdin=_pod("calm", serviceAccountName="quiet"))
    calm = json.loads(server.kubectl("get", "pod", "calm", "-o", "json").stdout)["spec"]
    assert "volumes" not in calm
    # the pod's own word wins over its account's
    server.kubectl(
        "create",
        "-f",
        "-",
        stdin=_pod("loud", serviceAccountName="quiet", automountServiceAccountToken=True),
    )
    loud = json.loads(server.kubectl("get", "pod", "loud", "-o", "json").stdout)["spec"]
    assert loud["volumes"][0]["name"].startswith("kube-api-access-")


def test_a_pod_in_a_brand_new_namespace_finds_its_default_account(server: Server) -> None:
    # kube's plugin waits for the controller here; a pod right after its namespace is admitted
    for i in range(5):
        server.kubectl("create", "namespace", f"quick-{i}")
        server.kubectl("create", "-n", f"quick-{i}", "-f", "-", stdin=_pod("first"))


def test_issuer_discovery_publishes_the_key_that_verifies_tokens(server: Server) -> None:
    config = json.loads(server.kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)
    assert config["issuer"] == ISSUER
    assert config["jwks_uri"] == f"{ISSUER}/openid/v1/jwks"
    assert config["id_token_signing_alg_values_supported"] == ["ES256"]
    (key,) = json.loads(server.kubectl("get", "--raw", "/openid/v1/jwks").stdout)["keys"]
    token = server.kubectl("create", "token", "default").stdout.strip()
    header, payload, signature = token.split(".")
    assert json.loads(jwt.b64decode(header))["kid"] == key["kid"]

    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(jwt.b64decode(key["x"]), "big"),
        int.from_bytes(jwt.b64decode(key["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    raw = jwt.b64decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if not

    # a non-resource URL like any other: the authorizer decides (no rule grants it yet)
    refused = server.kubectl("--token", token, "get", "--raw", "/openid/v1/jwks", check=False)
    assert 'cannot get path "/openid/v1/jwks"' in refused.stderr


def test_kvd_local_token_mints_a_user_token(server: Server) -> None:
    done = subprocess.run(
        [
            KVD,
            "local",
            "token",
            "--user",
            "alice",
            "--group",
            "dev",
            "--group",
            "ops",
            "--duration",
            "1h",
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    token = done.stdout.strip()
    assert len(done.stdout.splitlines()) == 1  # the token only, for $(…)
    user = _user(server, token)
    assert (user["username"], user["groups"]) == ("alice", ["dev", "ops", "system:authenticated"])
    body = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert body["exp"] - body["iat"] == 3600 and body["iss"] != ISSUER

    refused = subprocess.run(
        [KVD, "local", "token", "--user", "bob", "--data-dir", str(server.data_dir / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1
    assert refused.stderr.startswith("kvd local token: no service-account signing key at ")
