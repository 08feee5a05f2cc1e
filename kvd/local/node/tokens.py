"""Service-account tokens for pods' projected volumes, as the kubelet's token manager keeps them.

A token is asked of the API server with a TokenRequest bound to the pod (its name and uid), for
the audience and lifetime the volume names, using the node's own credentials (its kubeconfig).
It is cached per (pod, account, audience, lifetime) and asked again once 80% of its lifetime
has passed, or after 24 hours, whichever comes first — the kubelet's rule — so a pod always
holds a token with a fifth of its life left. `refresh_at(pod uid)` says when the next one is due,
so the pod's worker comes back to write it; `forget(pod uid)` drops a pod's tokens.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvd import logs

log = logs.get_logger(__name__)

Json = dict[str, Any]

RequestToken = Callable[[str, str, Json], Json]
"""(namespace, service account, TokenRequest body) → the answered TokenRequest."""

REFRESH_FRACTION = 0.8
MAX_AGE = 24 * 3600.0


@dataclass(frozen=True)
class _Held:
    token: str
    issued: float
    expires: float

    def refresh_at(self) -> float:
        return min(
            self.issued + REFRESH_FRACTION * (self.expires - self.issued), self.issued + MAX_AGE
        )


_Key = tuple[str, str, str, str, int]  # pod uid, namespace, account, audience, seconds


class TokenManager:
    def __init__(self, request: RequestToken, *, clock: Callable[[], float] = time.time) -> None:
        self.request = request
        self.clock = clock
        self._held: dict[_Key, _Held] = {}
        self._lock = threading.Lock()  # pod workers run on several threads

    def token(self, pod: Json, *, audience: str, expiration_seconds: int) -> str:
        """A token for `pod`'s service account, bound to the pod (ApiError when refused)."""
        meta = pod["metadata"]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        key = (meta["uid"], meta["namespace"], account, audience, expiration_seconds)
        now = self.clock()
        with self._lock:
            held = self._held.get(key)
        if held is not None and now < held.refresh_at():
            return held.token
        spec: Json = {
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if audience:  # none: the API server's own
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        answer = self.request(meta["namespace"], account, body)
        status = answer.get("status") or {}
        held = _Held(str(status["token"]), now, _epoch(str(status["expirationTimestamp"])))
        with self._lock:
            self._held[key] = held
        log.info(
            "token_requested",
            pod=meta["name"],
            namespace=meta["namespace"],
            account=account,
            audience=audience or None,
            expires=status["expirationTimestamp"],
        )
        return held.token

    def refresh_at(self, uid: str) -> float | None:
        """When the next of the pod's tokens is due for renewal (None: it holds none)."""
        with self._lock:
            due = [held.refresh_at() for key, held in self._held.items() if key[0] == uid]
        return min(due) if due else None

    def forget(self, uid: str) -> None:
        with self._lock:
            for key in [k for k in self._held if k[0] == uid]:
                del self._held[key]


def _epoch(stamp: str) -> float:
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    return parsed.replace(tzinfo=datetime.UTC).timestamp()
