"""JSON Web Tokens signed with the cluster's service-account key: compact JWS, ES256 or RS256.

The key is made once (ECDSA P-256) in DATA_DIR/pki/sa.key, mode 0600, as kube-apiserver's
`--service-account-key-file`; an RSA key put there instead is used with RS256. Its `kid` is the
unpadded base64url SHA-256 of the public key's DER, as kube derives it, so the JWKS published
at /openid/v1/jwks names the key tokens carry.

`verify` trusts nothing in a token before its signature: the header must name this key's
algorithm (so `none`, HS256 or the other asymmetric algorithm are refused, whatever the token
says), a `kid` if given must be this key's, and no `crit` extension is understood. Claims are
only decoded here; what they must say is `claims`' business.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

KEY_FILE = Path("pki") / "sa.key"
MAX_TOKEN = 16 * 1024  # a token larger than this is refused before it is decoded
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class JWTError(Exception):
    """A token that is not a valid JWS of this key; the message says what is wrong."""


class KeyMissing(Exception):
    """No signing key in the data directory (the API server makes it on its first start)."""


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise JWTError("malformed token: not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JWTError("malformed token: not base64url") from None


def _json_part(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64decode(text))
    except (ValueError, UnicodeDecodeError):
        raise JWTError(f"malformed token: its {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JWTError(f"malformed token: its {what} is not a JSON object")
    return value


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of what looks like a JWT, read before anything is verified: only to decide
    whose token it is (its issuer), never to trust it."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN or len(parts) != 3:
        raise JWTError("not a JWT")
    return _json_part(parts[1], "payload")


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SigningKey:
    def __init__(self, key: PrivateKey) -> None:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"an EC signing key must be P-256, not {key.curve.name}")
            self.alg = "ES256"
        elif isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                raise ValueError(
                    f"an RSA signing key must be 2048 bits or more, not {key.key_size}"
                )
            self.alg = "RS256"
        else:
            raise ValueError(f"a signing key must be EC P-256 or RSA, not {type(key).__name__}")
        self._key = key
        self.public = key.public_key()
        der = self.public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = b64encode(hashlib.sha256(der).digest())

    # --- the key file --------------------------------------------------------------------------

    @classmethod
    def load(cls, data_dir: Path) -> SigningKey:
        path = data_dir / KEY_FILE
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise KeyMissing(
                f"no service-account signing key at {path}: the API server makes it when it "
                f"first starts (kvd local up --data-dir {data_dir})"
            ) from None
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{path}: not an EC or RSA private key")
        return cls(key)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SigningKey:
        path = data_dir / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            try:
                os.link(tmp, path)  # never replaces a key another process made meanwhile
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        os.chmod(path, 0o600)
        return cls.load(data_dir)

    # --- signing and verifying -----------------------------------------------------------------

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": self.alg, "kid": self.kid}
        signing_input = f"{b64encode(_compact(header))}.{b64encode(_compact(claims))}".encode(
            "ascii"
        )
        return f"{signing_input.decode()}.{b64encode(self._signature(signing_input))}"

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of `token` once its signature is this key's; JWTError otherwise."""
        parts = token.split(".")
        if len(token) > MAX_TOKEN or len(parts) != 3:
            raise JWTError("not a JWT")
        header = _json_part(parts[0], "header")
        alg = header.get("alg")
        if alg != self.alg:
            raise JWTError(f"unexpected signing algorithm {alg!r}: tokens here are {self.alg}")
        if "kid" in header and header["kid"] != self.kid:
            raise JWTError("signed by another key")
        if "crit" in header:
            raise JWTError("unsupported critical header extensions")
        signature = b64decode(parts[2])
        if not self._verified(f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
            raise JWTError("invalid signature")
        return _json_part(parts[1], "payload")

    def _signature(self, data: bytes) -> bytes:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: R || S, not DER
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def _verified(self, data: bytes, signature: bytes) -> bool:
        try:
            if isinstance(self.public, ec.EllipticCurvePublicKey):
                if len(signature) != 64:
                    return False
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                self.public.verify(der, data, ec.ECDSA(hashes.SHA256()))
            else:
                assert isinstance(self.public, rsa.RSAPublicKey)
                self.public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (RFC 7517), as the JWKS document lists it."""
        common = {"use": "sig", "kid": self.kid, "alg": self.alg}
        if isinstance(self.public, ec.EllipticCurvePublicKey):
            numbers = self.public.public_numbers()
            return {
                "kty": "EC",
                "crv": "P-256",
                "x": b64encode(numbers.x.to_bytes(32, "big")),
                "y": b64encode(numbers.y.to_bytes(32, "big")),
                **common,
            }
        assert isinstance(self.public, rsa.RSAPublicKey)
        rsa_numbers = self.public.public_numbers()
        return {
            "kty": "RSA",
            "n": b64encode(_unsigned(rsa_numbers.n)),
            "e": b64encode(_unsigned(rsa_numbers.e)),
            **common,
        }


def _compact(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _unsigned(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")
