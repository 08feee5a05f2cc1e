"""The front proxy's credentials, and how a backend learns to trust them.

kube-apiserver proxies to an aggregated API server as the client certificate `front-proxy-client`,
signed by a CA of its own (the "requestheader" CA, kept apart from the client CA so that no
ordinary user certificate can claim to be the proxy), and says whom the request is for in
`X-Remote-User`, `X-Remote-Group` and `X-Remote-Extra-<key>` headers. It publishes the rules in
the ConfigMap `kube-system/extension-apiserver-authentication`: the client CA, the requestheader
CA, the allowed proxy names and the header names (list values as JSON arrays, as kube writes
them). A backend that reads it (kvd's controller does) accepts the headers only over a
connection whose client certificate chains to that CA and names an allowed name.

`FrontProxy` makes the CA and the client certificate in the server's `pki/` on first start
(keys 0600, named as kubeadm names them) and reuses them afterwards; `publish` writes the
ConfigMap at every start.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kvd.local.apiserver import tls
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.objects import Objects, Target

CLIENT_NAME = "front-proxy-client"  # kubeadm's name for it, the only allowed name
USERNAME_HEADERS = ("X-Remote-User",)
GROUP_HEADERS = ("X-Remote-Group",)
EXTRA_PREFIXES = ("X-Remote-Extra-",)
CONFIGMAP = "extension-apiserver-authentication"
CONFIGMAP_NAMESPACE = "kube-system"
MANAGER = "kube-apiserver"


class FrontProxy:
    """`pki/front-proxy-ca.crt` and `pki/front-proxy-client.{crt,key}` under `pki_dir`."""

    def __init__(self, pki_dir: Path) -> None:
        self.ca_cert = pki_dir / "front-proxy-ca.crt"
        self.cert = pki_dir / "front-proxy-client.crt"
        self.key = pki_dir / "front-proxy-client.key"
        if not (self.ca_cert.exists() and self.cert.exists() and self.key.exists()):
            self._generate(pki_dir)

    def _generate(self, pki_dir: Path) -> None:
        pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca, ca_key = tls.new_authority("kvd-local-front-proxy-ca")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLIENT_NAME)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + tls.VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        tls.write_file(pki_dir / "front-proxy-ca.key", tls.key_bytes(ca_key), 0o600)
        tls.write_file(self.key, tls.key_bytes(key), 0o600)
        tls.write_file(self.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        tls.write_file(self.ca_cert, ca.public_bytes(serialization.Encoding.PEM), 0o644)


def authentication_data(client_ca: bytes, front_proxy: FrontProxy) -> dict[str, str]:
    """The ConfigMap's data, keyed and formatted as kube-apiserver writes it."""
    return {
        "client-ca-file": client_ca.decode(),
        "requestheader-client-ca-file": front_proxy.ca_cert.read_text(),
        "requestheader-allowed-names": json.dumps([CLIENT_NAME]),
        "requestheader-username-headers": json.dumps(list(USERNAME_HEADERS)),
        "requestheader-group-headers": json.dumps(list(GROUP_HEADERS)),
        "requestheader-extra-headers-prefix": json.dumps(list(EXTRA_PREFIXES)),
    }


def publish(objects: Objects, data: dict[str, str]) -> None:
    """Create `kube-system/extension-apiserver-authentication`, or make its data `data`."""
    resource = objects.registry.get("", "configmaps")
    assert resource is not None
    t = Target(resource, "v1", CONFIGMAP_NAMESPACE, CONFIGMAP)
    current = objects.store.get(resource.key, CONFIGMAP_NAMESPACE, CONFIGMAP)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": CONFIGMAP_NAMESPACE},
        "data": data,
    }
    if current is None:
        objects.create(t, body, validation="Strict", dry_run=False, manager=MANAGER)
    elif current.get("data") != data:
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            objects.update(t, body, validation="Strict", dry_run=False, manager=MANAGER)
        except APIError as exc:
            if exc.code != 409:
                raise
