"""Connecting to the Kubernetes API with the official client, and the few calls kvd makes raw.

Objects cross this boundary as plain JSON dicts (camelCase, as on the wire), never as the client's
generated models: kvd's own code reads `obj["spec"]["nodeName"]` the way manifests are written,
and a dict is trivially copied. Errors come back as `ApiError` with the HTTP status and the
server's `reason`, so callers branch on `.status == 409` without importing `kubernetes`.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config

from kvd.version import kvd_version

Json = dict[str, Any]


class ApiError(Exception):
    """A failed API call: `status` (HTTP code, 0 when the server was not reached) and `reason`."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class ConfigError(Exception):
    """No way to reach the cluster: the kubeconfig is missing or unusable, or, without one, the
    process does not run in a pod. The message names which."""


def connect(kubeconfig: Path | None = None, *, agent: str = "kvd") -> client.ApiClient:
    """An API client from `kubeconfig`, or from the pod's service account when None.

    `agent` names the component in its User-Agent (`kvd-controller/0.1.0 …`), as client-go's
    do, so the API server's audit log and a cluster admin can tell the daemons apart."""
    try:
        if kubeconfig is None:
            if not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise ConfigError(
                    "no --kubeconfig, and not in a pod: KUBERNETES_SERVICE_HOST is unset"
                )
            config.load_incluster_config()
            api = client.ApiClient()
            _canonical_bearer(api.configuration)
        elif not kubeconfig.is_file():  # the client would only say "No configuration found"
            raise ConfigError(f"kubeconfig {kubeconfig} does not exist")
        else:
            api = config.new_client_from_config(config_file=str(kubeconfig))
    except config.ConfigException as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster configuration"
        raise ConfigError(f"{where}: {exc}") from None
    api.user_agent = f"{agent}/{kvd_version()} {api.user_agent}"
    return api


TOKEN_REREAD = 60.0  # seconds; the kubelet rotates a projected token well before it expires


def _canonical_bearer(configuration: client.Configuration) -> None:
    """Send the pod's token as `Bearer <token>`, as client-go does, re-read from its file at
    most every TOKEN_REREAD seconds. The client's own in-cluster hook sends `bearer <token>`:
    kube-apiserver takes the scheme in any case, but not every server does, and the hook
    re-installs itself on every refresh, so it cannot be wrapped; this replaces it."""
    path = Path(incluster_config.SERVICE_TOKEN_FILENAME)  # read at call time: tests point it
    read_at = [-TOKEN_REREAD]

    def refresh(conf: client.Configuration) -> None:
        now = time.monotonic()
        if now - read_at[0] < TOKEN_REREAD:
            return
        try:
            token = path.read_text().strip()
        except OSError:
            return  # keep the token in use; the next call tries the file again
        if token:
            conf.api_key["BearerToken"] = f"Bearer {token}"
            read_at[0] = now

    # the client declares the hook None-typed, though it calls it when set
    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
    refresh(configuration)


def bearer_token(api: client.ApiClient) -> str | None:
    """The bearer token `api` sends (the kubeconfig user's `token`, `tokenFile` or exec plugin's),
    for a kvd service that takes the same credentials (ControllerService); None without one."""
    setting = api.configuration.auth_settings().get("BearerToken") or {}
    value = str(setting.get("value") or "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def ca_bundle(api: client.ApiClient) -> bytes | None:
    """The CA bundle (PEM) `api` verifies the API server with, None when it trusts the system's:
    the cluster CA, which also signed kvd's own services' certificates."""
    path = api.configuration.ssl_ca_cert
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the CA bundle {path}: {exc.strerror or exc}") from None


def core_v1(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def list_custom(api: client.ApiClient, group: str, version: str, plural: str) -> Any:
    """The list (and watch) function of a custom resource across namespaces, for an Informer."""
    custom = client.CustomObjectsApi(api)
    return functools.partial(custom.list_cluster_custom_object, group, version, plural)


def to_json(api: client.ApiClient, obj: Any) -> Json:
    """A generated model (or a dict) as its wire-format dict."""
    if isinstance(obj, dict):
        return obj
    result: Json = api.sanitize_for_serialization(obj)
    return result


def error(exc: BaseException) -> ApiError:
    """`exc` from the client (or the connection under it) as an `ApiError`."""
    if isinstance(exc, ApiException):
        reason, message = str(exc.reason or ""), str(exc.reason or "")
        try:
            body = json.loads(exc.body or "{}")
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or message)
        except (TypeError, ValueError):
            pass
        return ApiError(int(exc.status or 0), reason, message)
    return ApiError(0, "ConnectionError", str(exc) or type(exc).__name__)


def _status_error(status: int, raw: bytes | None) -> ApiError:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {}
    message = str(body.get("message") or (raw or b"").decode(errors="replace")[:200])
    return ApiError(status, str(body.get("reason") or status), message)


class Raw:
    """JSON requests by path, for what the generated API classes make awkward (subresources of
    custom resources, patches with an explicit content type, responses they cannot decode)."""

    def __init__(self, api: client.ApiClient, *, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Json:
        raw = self._send(method, path, body=body, query=query, content_type=content_type)
        data: Json = json.loads(raw) if raw else {}
        return data

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Json:
        return self.request("GET", path, query=query)

    def text(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """GET a body that is not JSON, e.g. a pod's log (`/api/v1/…/pods/NAME/log`)."""
        return self._send("GET", path, query=query, accept="*/*").decode(errors="replace")

    def create(self, path: str, body: Json) -> Json:
        return self.request("POST", path, body=body)

    def update(self, path: str, body: Json) -> Json:
        return self.request("PUT", path, body=body)

    def merge_patch(self, path: str, patch: Json) -> Json:
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, path: str, *, body: Json | None = None) -> Json:
        return self.request("DELETE", path, body=body)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> bytes:
        headers = {"Content-Type": content_type, "Accept": accept}
        try:
            serialized = self.api.param_serialize(
                method,
                path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*serialized, _request_timeout=self.timeout)
            raw = response.read()
        except Exception as exc:
            raise error(exc) from exc
        if not 200 <= response.status < 300:
            raise _status_error(response.status, raw)
        return bytes(raw or b"")
