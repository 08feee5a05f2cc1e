"""Who sent a request the API server proxied to us: the front-proxy ("request header")
authentication every aggregated API server does (kube-aggregator's contract).

The API server authenticates the user, then calls the aggregated server over TLS with its
front-proxy client certificate and names the user in headers. Which CA signs that certificate,
which common names may present it and which headers carry the user are published in the
ConfigMap `kube-system/extension-apiserver-authentication` (`requestheader-client-ca-file`,
`requestheader-allowed-names`, `requestheader-username-headers`, `-uid-headers`,
`-group-headers`, `-extra-headers-prefix`; lists as JSON arrays). A request whose TLS client
certificate that CA does not sign, or whose common name is not allowed (an empty list allows
any), is not from the API server: its identity headers mean nothing and it is refused (401).

The ConfigMap is read when first needed and again at most every `refresh` seconds, so a
rotated front-proxy CA is picked up without a restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import unquote

from kvd import logs
from kvd.kube.reviews import UserInfo

log = logs.get_logger(__name__)

Json = dict[str, Any]
NAMESPACE: Final = "kube-system"
NAME: Final = "extension-apiserver-authentication"
PATH: Final = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"
REFRESH: Final = 30.0


class Headers(Protocol):
    def get_all(self, name: str, failobj: Any = None) -> list[str] | Any: ...
    def keys(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class RequestHeaderConfig:
    client_ca: str  # PEM
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)


def _list(data: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = data.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        value = [part.strip() for part in raw.split(",")]
    if isinstance(value, str):
        value = [value]
    return tuple(str(v) for v in value if str(v))


def parse(data: Mapping[str, str] | None) -> RequestHeaderConfig | None:
    """The ConfigMap's `data` as a config; None when it names no front-proxy CA."""
    ca = (data or {}).get("requestheader-client-ca-file", "")
    if not data or not ca.strip():
        return None
    return RequestHeaderConfig(
        client_ca=ca,
        allowed_names=_list(data, "requestheader-allowed-names", ()),
        username_headers=_list(data, "requestheader-username-headers", ("X-Remote-User",)),
        uid_headers=_list(data, "requestheader-uid-headers", ()),
        group_headers=_list(data, "requestheader-group-headers", ("X-Remote-Group",)),
        extra_prefixes=_list(data, "requestheader-extra-headers-prefix", ("X-Remote-Extra-",)),
    )


def common_name(peer: Mapping[str, Any] | None) -> str | None:
    """The subject CN of a verified peer certificate (`SSLSocket.getpeercert()`)."""
    for rdn in (peer or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def proxied_user(
    config: RequestHeaderConfig, peer: Mapping[str, Any] | None, headers: Headers
) -> tuple[UserInfo | None, str]:
    """The user the API server names, or None and why the request is refused."""
    name = common_name(peer)
    if name is None:
        return None, "no client certificate signed by the front-proxy CA was presented"
    if config.allowed_names and name not in config.allowed_names:
        return None, f"the client certificate's common name {name!r} is not an allowed front proxy"
    user = _first(headers, config.username_headers)
    if not user:
        return None, f"the request names no user ({', '.join(config.username_headers)})"
    groups = tuple(g for h in config.group_headers for g in headers.get_all(h) or [])
    extra: dict[str, list[str]] = {}
    for header in list(headers.keys()):
        for prefix in config.extra_prefixes:
            if header.lower().startswith(prefix.lower()):
                key = unquote(header[len(prefix) :]).lower()
                extra.setdefault(key, []).extend(headers.get_all(header) or [])
    return (
        UserInfo(
            username=user,
            uid=_first(headers, config.uid_headers) or "",
            groups=groups,
            extra={k: tuple(dict.fromkeys(v)) for k, v in extra.items()},
        ),
        "",
    )


def _first(headers: Headers, names: Sequence[str]) -> str | None:
    for name in names:
        values = headers.get_all(name) or []
        if values and values[0]:
            return str(values[0])
    return None


class FrontProxy:
    """The current front-proxy config, from `fetch` (the ConfigMap's JSON, None when absent),
    cached for `refresh` seconds."""

    def __init__(
        self,
        fetch: Callable[[], Json | None],
        *,
        refresh: float = REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._config: RequestHeaderConfig | None = None

    def config(self) -> RequestHeaderConfig | None:
        with self._lock:
            now = self._clock()
            if self._loaded_at is not None and now - self._loaded_at < self._refresh:
                return self._config
            try:
                found = self._fetch()
            except Exception as exc:
                log.warning(
                    "front_proxy_config_unreadable", configmap=f"{NAMESPACE}/{NAME}", error=str(exc)
                )
                self._loaded_at = now
                return self._config
            config = parse((found or {}).get("data"))
            if config != self._config:
                log.info(
                    "front_proxy_config_loaded",
                    configmap=f"{NAMESPACE}/{NAME}",
                    present=config is not None,
                )
            self._config, self._loaded_at = config, now
            return config
