"""Service-account issuer discovery: the OpenID provider configuration and the key set.

As kube-apiserver publishes them, so that something outside the cluster can verify its
service-account tokens: /.well-known/openid-configuration names the issuer and where its keys
are (the issuer's URL + /openid/v1/jwks, kube's default), /openid/v1/jwks lists the public key.
They are non-resource URLs: whether a user may read them is the authorizer's call
(`system:service-account-issuer-discovery` in kube).
"""

from __future__ import annotations

import json

from aiohttp import web

from kvd.local.apiserver.serviceaccounts import claims, jwt

CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
PATHS = frozenset({CONFIGURATION_PATH, JWKS_PATH})
CACHE = "public, max-age=3600"


def configuration(key: jwt.SigningKey) -> dict[str, object]:
    return {
        "issuer": claims.ISSUER,
        "jwks_uri": f"{claims.ISSUER}{JWKS_PATH}",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [key.alg],
    }


def respond(path: str, key: jwt.SigningKey) -> web.Response:
    """The document at `path` (one of PATHS), with kube's media types and caching."""
    if path == CONFIGURATION_PATH:
        body, media = configuration(key), "application/json"
    else:
        body, media = {"keys": [key.jwk()]}, "application/jwk-set+json"
    return web.Response(text=json.dumps(body), content_type=media, headers={"Cache-Control": CACHE})
