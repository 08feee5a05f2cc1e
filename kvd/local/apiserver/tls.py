"""TLS for the local API server: a private CA and a serving certificate for loopback.

kubectl (client-go) does not send a bearer token over plain HTTP, and kube-apiserver never
serves without TLS, so neither does this server. On first start a CA and a serving certificate
for 127.0.0.1, ::1 and localhost are generated into the data directory (keys 0600) and reused
afterwards; the kubeconfig carries the CA so clients verify the server.

The same CA signs the serving certificates of kvd's own TLS services in the local cluster
(`issue`: the handler's HandlerService, the controller's ControllerService), as a real
cluster's CA would, so that a client holding only a kubeconfig (its CA) can verify them too.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=3650)
ISSUED_VALIDITY = datetime.timedelta(days=365)
# the server's own files in pki/, which a component's certificate must not replace
RESERVED = ("ca", "apiserver", "sa", "front-proxy-ca", "front-proxy-client")


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` atomically with `data`, created with `mode`."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Certificates:
    def __init__(
        self, data_dir: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
    ) -> None:
        self.dir = data_dir / "pki"
        self.ca_cert = self.dir / "ca.crt"
        self.cert = self.dir / "apiserver.crt"
        self.key = self.dir / "apiserver.key"
        if not (self.ca_cert.exists() and self.cert.exists() and self.key.exists()):
            self._generate(hosts)

    def _generate(self, hosts: tuple[str, ...]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca, ca_key = new_authority("kvd-local-ca")
        key, cert = _serving(ca_key, ca.subject, "kvd-local-apiserver", hosts, VALIDITY)
        write_file(self.dir / "ca.key", key_bytes(ca_key), 0o600)
        write_file(self.ca_cert, ca.public_bytes(serialization.Encoding.PEM), 0o644)
        write_file(self.key, key_bytes(key), 0o600)
        write_file(self.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue(self, name: str, hosts: Sequence[str]) -> tuple[Path, Path]:
        """A serving certificate for the component `name`, valid for `hosts` (IP addresses and
        DNS names), signed by this CA: written to `pki/<name>.crt` and `pki/<name>.key`
        (0600), replacing an earlier one; returns (certificate, key)."""
        if not name or "/" in name or name in RESERVED:
            raise ValueError(f"{name!r} cannot name a component's certificate")
        if not hosts:
            raise ValueError(f"a certificate for {name} must name at least one host")
        ca, ca_key = self.authority()
        key, cert = _serving(ca_key, ca.subject, f"kvd-local-{name}", hosts, ISSUED_VALIDITY)
        cert_path, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        # the key first: a new certificate never pairs with an old key
        write_file(key_path, key_bytes(key), 0o600)
        write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert_path, key_path

    def server_context(self) -> ssl.SSLContext:
        """Serves with the server certificate; asks for, and verifies against the CA, a client
        certificate that a caller may present instead of a token (`clientcerts`)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        context.load_verify_locations(cafile=self.ca_cert)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def authority(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The CA's certificate and key, to sign other certificates with."""
        cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.dir / 'ca.key'} is not an EC key")
        return cert, key


def new_authority(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA (certificate, key) that may sign leaf certificates only."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca, ca_key


def _serving(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    common_name: str,
    hosts: Sequence[str],
    validity: datetime.timedelta,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
