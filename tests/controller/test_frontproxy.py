"""Reading the front proxy's identity headers as kube-aggregator's contract says (the TLS side,
with real certificates, is in test_subresources.py)."""

from __future__ import annotations

import json
from email.message import Message

import pytest

from kvd.controller import frontproxy
from kvd.kube.reviews import UserInfo
from tests.support.clock import FakeClock

PEER = {"subject": ((("organizationName", "kube"),), (("commonName", "front-proxy-client"),))}
DATA = {
    "requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----\n...",
    "requestheader-allowed-names": json.dumps(["front-proxy-client"]),
    "requestheader-username-headers": json.dumps(["X-Remote-User"]),
    "requestheader-uid-headers": json.dumps(["X-Remote-Uid"]),
    "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
    "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"]),
}


def headers(*pairs: tuple[str, str]) -> Message:
    message = Message()
    for name, value in pairs:
        message[name] = value
    return message


def test_the_user_groups_uid_and_extra_come_from_the_named_headers() -> None:
    config = frontproxy.parse(DATA)
    assert config is not None
    user, why = frontproxy.proxied_user(
        config,
        PEER,
        headers(
            ("X-Remote-User", "alice"),
            ("X-Remote-Uid", "u-1"),
            ("X-Remote-Group", "dev"),
            ("X-Remote-Group", "system:authenticated"),
            ("X-Remote-Extra-Scopes", "a"),
            ("X-Remote-Extra-Scopes", "b"),
            ("X-Remote-Extra-Acme.com%2Fproject", "x"),
            ("X-Other", "ignored"),
        ),
    )
    assert why == ""
    assert user == UserInfo(
        username="alice",
        uid="u-1",
        groups=("dev", "system:authenticated"),
        extra={"scopes": ("a", "b"), "acme.com/project": ("x",)},
    )


@pytest.mark.parametrize(
    ("peer", "pairs", "why"),
    [
        pytest.param(None, [("X-Remote-User", "a")], "no client certificate", id="no-cert"),
        pytest.param(
            {"subject": ((("commonName", "mallory"),),)},
            [("X-Remote-User", "a")],
            "'mallory' is not an allowed front proxy",
            id="not-allowed",
        ),
        pytest.param(PEER, [("X-Remote-Group", "g")], "names no user", id="no-user"),
    ],
)
def test_refusals_say_why(
    peer: dict[str, object] | None, pairs: list[tuple[str, str]], why: str
) -> None:
    config = frontproxy.parse(DATA)
    assert config is not None
    user, said = frontproxy.proxied_user(config, peer, headers(*pairs))
    assert user is None and why in said


def test_defaults_and_no_allowed_names_allow_any_certificate_of_the_ca() -> None:
    config = frontproxy.parse({"requestheader-client-ca-file": "pem"})
    assert config is not None and config.allowed_names == ()
    assert config.username_headers == ("X-Remote-User",)
    user, _ = frontproxy.proxied_user(
        config, {"subject": ((("commonName", "anyone"),),)}, headers(("X-Remote-User", "bob"))
    )
    assert user is not None and user.username == "bob"
    assert frontproxy.parse({"client-ca-file": "pem"}) is None  # no front proxy configured


def test_the_configmap_is_read_again_only_after_the_refresh_period() -> None:
    clock = FakeClock()
    answers = [None, {"data": DATA}]
    calls: list[int] = []

    def fetch() -> dict[str, object] | None:
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1]  # type: ignore[return-value]

    proxy = frontproxy.FrontProxy(fetch, refresh=30, clock=clock)
    assert proxy.config() is None
    clock.advance(10)
    assert proxy.config() is None and len(calls) == 1  # cached
    clock.advance(25)
    assert proxy.config() is not None and len(calls) == 2
