"""A caller's bearer token → its user, by TokenReview, with the answer cached briefly.

This is what kube's webhook token authenticator does for the API server, done for a kvd
daemon's own API: every call's token would otherwise cost a round trip to the API server, and
a console session's calls come in bursts. So a positive review is kept for `ttl` seconds, but
never past the token's own expiry (the `exp` claim of a JWT, which the API server has just
vouched for; a token that is not a JWT is kept for `ttl`), so a token that expires is refused
at once. Refusals are not cached: a token fixed by its owner works on the next call.

The cache is keyed by an HMAC of the token under a key made for this process, never by the
token itself, so a memory dump or a log of the cache holds nothing replayable; it is bounded
(least recently used entries go first). The token is never logged, and no message here
contains it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from kvd.kube.reviews import TokenReviewed, UserInfo

Review = Callable[[str], TokenReviewed]
"""token → the API server's TokenReview answer (the audiences bound in); raises ApiError."""

TTL = 10.0
MAX_ENTRIES = 1024


class AuthenticationError(Exception):
    """The token does not authenticate anyone (for this service's audiences); the message says
    what the API server found wrong with it, without the token."""


class TokenAuthenticator:
    def __init__(
        self,
        review: Review,
        *,
        ttl: float = TTL,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._review = review
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, tuple[UserInfo, float]] = OrderedDict()

    def authenticate(self, token: str) -> UserInfo:
        """The token's user; AuthenticationError when it is invalid, expired or for another
        audience; ApiError when the API server could not be asked."""
        key = hmac.new(self._key, token.encode(), hashlib.sha256).digest()
        now = self._clock()
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                user, until = found
                if now < until:
                    self._cache.move_to_end(key)
                    return user
                del self._cache[key]
        answer = self._review(token)
        if answer.user is None:
            raise AuthenticationError(answer.error or "the token is not valid")
        until = now + self._ttl
        expiry = token_expiry(token)
        if expiry is not None:
            until = min(until, expiry)
        if until > now:
            with self._lock:
                self._cache[key] = (answer.user, until)
                self._cache.move_to_end(key)
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        return answer.user

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, in seconds since the epoch; None for any other token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        exp = json.loads(payload).get("exp")
    except (ValueError, AttributeError):
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)
