"""The user's side of `subresources.kubevirt.io` (what virtctl's client does): connect with a
kubeconfig as kubectl would (`--kubeconfig`, `--context`, the context's namespace), PUT the
lifecycle verbs, and open the console and VNC websockets, all through the API server, which
authenticates the user and proxies to kvd's controller.

The websocket uses the kubeconfig's own TLS settings (its CA, client certificate and key, or
`insecure-skip-tls-verify`) and its bearer token, like the official client's REST calls. A
refused upgrade becomes an `ApiError` carrying the server's Status (its code and message), so
the CLI tells `403 Forbidden` from `409 not running` without parsing text.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import websocket
from kubernetes import client, config

from kvd.kube.client import ApiError, ConfigError, Raw, bearer_token
from kvd.version import kvd_version

Json = dict[str, Any]
GROUP: Final = "subresources.kubevirt.io"
PREFIX: Final = f"/apis/{GROUP}/v1"
PLAIN: Final = "plain.kubevirt.io"
CONNECT_TIMEOUT: Final = 30.0


def connect(kubeconfig: Path, *, context: str | None = None) -> client.ApiClient:
    """An API client as the kubeconfig's user (of `context`, default the current one)."""
    if not kubeconfig.is_file():
        raise ConfigError(f"kubeconfig {kubeconfig} does not exist")
    try:
        api: client.ApiClient = config.new_client_from_config(
            config_file=str(kubeconfig), context=context
        )
    except config.ConfigException as exc:
        raise ConfigError(f"kubeconfig {kubeconfig}: {exc}") from None
    api.user_agent = f"kvdctl/{kvd_version()} {api.user_agent}"
    return api


def namespace(kubeconfig: Path, *, context: str | None = None) -> str:
    """The context's namespace, or `default`, as kubectl picks it."""
    try:
        contexts, current = config.list_kube_config_contexts(config_file=str(kubeconfig))
    except (config.ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def path(namespace: str, resource: str, name: str, sub: str) -> str:
    return f"{PREFIX}/namespaces/{namespace}/{resource}/{name}/{sub}"


def put(api: client.ApiClient, where: str, body: Json | None = None) -> None:
    """PUT a verb (its options as `body`); `ApiError` when refused."""
    Raw(api).request("PUT", where, body=body or {})


def server_version(api: client.ApiClient) -> Json:
    return Raw(api).get(f"{PREFIX}/version")


def open_stream(
    api: client.ApiClient, where: str, *, query: Mapping[str, str] | None = None
) -> websocket.WebSocket:
    """The websocket at `where` (subprotocol plain.kubevirt.io), connected and upgraded; it
    blocks on reads from then on (no timeout)."""
    settings = api.configuration
    base = str(settings.host).rstrip("/")
    url = "wss://" + base.removeprefix("https://") if base.startswith("https://") else base
    if url.startswith("http://"):
        url = "ws://" + url.removeprefix("http://")
    url += where + (f"?{urlencode(dict(query))}" if query else "")
    sslopt: dict[str, Any] = {
        "cert_reqs": ssl.CERT_REQUIRED if settings.verify_ssl else ssl.CERT_NONE
    }
    if not settings.verify_ssl:
        sslopt["check_hostname"] = False
    if settings.ssl_ca_cert:
        sslopt["ca_certs"] = settings.ssl_ca_cert
    if settings.cert_file:
        sslopt["certfile"] = settings.cert_file
    if settings.key_file:
        sslopt["keyfile"] = settings.key_file
    token = bearer_token(api)
    headers = [f"Authorization: Bearer {token}"] if token else []
    headers.append(f"User-Agent: {api.user_agent}")
    try:
        ws = websocket.create_connection(
            url, subprotocols=[PLAIN], header=headers, sslopt=sslopt, timeout=CONNECT_TIMEOUT
        )
    except websocket.WebSocketBadStatusException as exc:
        raise _refusal(exc.status_code, exc.resp_body) from None
    except (OSError, websocket.WebSocketException) as exc:
        raise ApiError(0, "ConnectionError", f"cannot reach {base}: {exc}") from None
    ws.settimeout(None)
    return ws


def _refusal(code: int, body: bytes | str | None) -> ApiError:
    text = body.decode(errors="replace") if isinstance(body, bytes) else (body or "")
    try:
        status = json.loads(text)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    message = str(status.get("message") or text.strip() or f"HTTP {code}")
    if not status.get("message") and len(message) < 40:  # a proxy's word for it, not a reason
        message = f"the API server refused the connection: HTTP {code} ({message})"
    return ApiError(code, str(status.get("reason") or code), message)
