"""TokenAuthenticator's cache, with a reviewer that counts its reviews and a fake clock (the
reviews themselves, against a real API server, are in test_reviews.py)."""

from __future__ import annotations

import base64
import json

import pytest

from kvd.kube.authenticator import AuthenticationError, TokenAuthenticator, token_expiry
from kvd.kube.reviews import TokenReviewed, UserInfo
from tests.support.clock import FakeClock

ALICE = UserInfo("alice", uid="u-1", groups=("system:authenticated",))


def jwt(**claims: object) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(dict(claims))}.c2lnbmF0dXJl"


class Reviewer:
    """Answers as the API server would for a fixed set of valid tokens; counts what it is asked."""

    def __init__(self, valid: dict[str, UserInfo]) -> None:
        self.valid = valid
        self.asked: list[str] = []

    def __call__(self, token: str) -> TokenReviewed:
        self.asked.append(token)
        user = self.valid.get(token)
        return TokenReviewed(user, error="" if user else "token has expired")


def test_a_valid_token_is_reviewed_once_within_the_ttl_then_again() -> None:
    clock = FakeClock()
    reviewer = Reviewer({"tok": ALICE})
    authenticator = TokenAuthenticator(reviewer, ttl=10, clock=clock)
    assert authenticator.authenticate("tok") == ALICE
    clock.advance(9.9)
    assert authenticator.authenticate("tok") == ALICE
    assert reviewer.asked == ["tok"]
    clock.advance(0.2)
    assert authenticator.authenticate("tok") == ALICE
    assert reviewer.asked == ["tok", "tok"]


def test_a_refusal_is_not_cached_and_its_message_is_the_api_servers() -> None:
    reviewer = Reviewer({})
    authenticator = TokenAuthenticator(reviewer, clock=FakeClock())
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="token has expired"):
            authenticator.authenticate("bad")
    assert reviewer.asked == ["bad", "bad"]
    reviewer.valid["bad"] = ALICE  # fixed by its owner (say, a binding created): works at once
    assert authenticator.authenticate("bad") == ALICE


def test_a_cached_token_is_never_kept_past_its_expiry() -> None:
    clock = FakeClock(start=1000.0)
    token = jwt(sub="alice", exp=1003)
    reviewer = Reviewer({token: ALICE})
    authenticator = TokenAuthenticator(reviewer, ttl=60, clock=clock)
    authenticator.authenticate(token)
    clock.advance(2.9)
    authenticator.authenticate(token)
    assert len(reviewer.asked) == 1
    clock.advance(0.1)  # now at its exp: the API server must say again (it will say expired)
    del reviewer.valid[token]
    with pytest.raises(AuthenticationError):
        authenticator.authenticate(token)


def test_an_already_expired_token_the_review_still_passed_is_not_cached() -> None:
    clock = FakeClock(start=1000.0)
    token = jwt(exp=999)
    reviewer = Reviewer({token: ALICE})
    authenticator = TokenAuthenticator(reviewer, clock=clock)
    authenticator.authenticate(token)
    assert len(authenticator) == 0


def test_the_cache_is_bounded_dropping_the_least_recently_used() -> None:
    reviewer = Reviewer({f"t{i}": UserInfo(f"u{i}") for i in range(4)})
    authenticator = TokenAuthenticator(reviewer, max_entries=2, clock=FakeClock())
    for token in ("t0", "t1", "t0", "t2"):  # t1 is the least recently used when t2 comes
        authenticator.authenticate(token)
    assert len(authenticator) == 2
    reviewer.asked.clear()
    authenticator.authenticate("t0")
    authenticator.authenticate("t2")
    assert reviewer.asked == []
    authenticator.authenticate("t1")
    assert reviewer.asked == ["t1"]


def test_the_cache_holds_no_token() -> None:
    authenticator = TokenAuthenticator(Reviewer({"s3cret-token": ALICE}), clock=FakeClock())
    authenticator.authenticate("s3cret-token")
    assert "s3cret-token" not in repr(vars(authenticator))


@pytest.mark.parametrize(
    ("token", "expiry"),
    [
        pytest.param(jwt(exp=1700000000), 1700000000.0, id="jwt"),
        pytest.param(jwt(sub="x"), None, id="jwt-without-exp"),
        pytest.param(jwt(exp="soon"), None, id="exp-not-a-number"),
        pytest.param(jwt(exp=True), None, id="exp-a-bool"),
        pytest.param("opaque-static-token", None, id="not-a-jwt"),
        pytest.param("a.!!!.c", None, id="not-base64"),
        pytest.param("a.bnVsbA.c", None, id="payload-not-an-object"),
    ],
)
def test_token_expiry(token: str, expiry: float | None) -> None:
    assert token_expiry(token) == expiry
