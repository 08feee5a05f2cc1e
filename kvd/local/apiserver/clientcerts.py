"""X.509 client certificates: the local API server's third way to know a caller, as kube's.

kube-apiserver authenticates a client certificate signed by its client CA as the user named by
the subject's Common Name, in the groups named by its Organization attributes; kubelets are
`CN=system:node:<name>, O=system:nodes` this way. The local cluster's CA (`tls.Certificates`)
is that client CA: the server asks for a certificate in the handshake (optional, so bearer-token
clients are unaffected) and a verified one names the user. `issue` signs one, which is how
`kvd local up` gives the local node its identity: credentials that need no Secret or token
file, held only by the node's kubeconfig (mode 0600).
"""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kvd.local.apiserver import auth, tls

AUTHENTICATED = "system:authenticated"
VALIDITY = datetime.timedelta(days=365)  # a kubelet's client certificate's, before rotation


def issue(
    certs: tls.Certificates,
    user: str,
    groups: tuple[str, ...] = (),
    *,
    validity: datetime.timedelta = VALIDITY,
) -> tuple[bytes, bytes]:
    """A client certificate for `user` in `groups`, signed by the cluster CA: (cert, key) PEM."""
    if not user:
        raise ValueError("a client certificate needs a user name (its Common Name)")
    subject = x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
            x509.NameAttribute(NameOID.COMMON_NAME, user),
        ]
    )
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, ca_key = certs.authority()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def authenticate(request: web.Request) -> auth.User | None:
    """The user of the verified client certificate the request's connection presented, if any."""
    transport = request.transport
    peer: Any = transport.get_extra_info("peercert") if transport is not None else None
    # None presented; one that was is verified by ssl against the CA, for client use (OpenSSL's
    # `sslclient` purpose: the server's own certificate, serverAuth only, fails the handshake).
    if not peer:
        return None
    names: list[str] = []
    organizations: list[str] = []
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                organizations.append(value)
    if len(names) != 1 or not names[0]:
        return None
    groups = tuple(dict.fromkeys((*organizations, AUTHENTICATED)))
    return auth.User(names[0], groups)
