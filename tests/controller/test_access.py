"""ControllerService's authentication and authorization decisions, with fake reviews (pure
logic); against a real API server and RBAC, in test_service.py and tests/e2e/test_console.py."""

from __future__ import annotations

import grpc
import pytest

from kvd import rpc_auth
from kvd.controller import access
from kvd.kube.authenticator import AuthenticationError
from kvd.kube.client import ApiError
from kvd.kube.reviews import AccessDecision, ResourceAttributes, UserInfo

ALICE = UserInfo("alice", uid="a-1", groups=("team", "system:authenticated"), extra={"k": ("v",)})
CONSOLE = access.subresource("virtualmachineinstances", "console", "get", "a", "vm1")


def authenticate(token: str) -> UserInfo:
    if token == "alice-token":
        return ALICE
    raise AuthenticationError("token has expired")


class Reviews:
    def __init__(self, decision: AccessDecision | ApiError) -> None:
        self.decision = decision
        self.asked: list[tuple[UserInfo, ResourceAttributes]] = []

    def __call__(self, user: UserInfo, attributes: ResourceAttributes) -> AccessDecision:
        self.asked.append((user, attributes))
        if isinstance(self.decision, ApiError):
            raise self.decision
        return self.decision


def test_the_console_is_asked_about_as_virt_api_asks() -> None:
    reviews = Reviews(AccessDecision(allowed=True))
    checker = access.Access(authenticate, reviews)
    user = checker.authenticate([("authorization", "Bearer alice-token")])
    checker.authorize(user, CONSOLE)
    asked_user, attributes = reviews.asked[0]
    assert asked_user == ALICE  # name, uid, groups and extra, as the TokenReview gave them
    assert attributes == ResourceAttributes(
        verb="get",
        group="subresources.kubevirt.io",
        version="v1",
        resource="virtualmachineinstances",
        subresource="console",
        namespace="a",
        name="vm1",
    )


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        pytest.param(
            AccessDecision(allowed=False),
            'User "alice" cannot get virtualmachineinstances/console in API group '
            '"subresources.kubevirt.io" in the namespace "a"',
            id="no-opinion",
        ),
        pytest.param(
            AccessDecision(allowed=False, denied=True, reason="policy says no"),
            'User "alice" cannot get virtualmachineinstances/console in API group '
            '"subresources.kubevirt.io" in the namespace "a": policy says no',
            id="with-reason",
        ),
    ],
)
def test_a_refused_review_names_user_verb_resource_and_namespace(
    decision: AccessDecision, message: str
) -> None:
    with pytest.raises(rpc_auth.Refused) as refused:
        access.Access(authenticate, Reviews(decision)).authorize(ALICE, CONSOLE)
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.message == message


def test_a_review_that_cannot_be_made_is_unavailable() -> None:
    reviews = Reviews(ApiError(503, "ServiceUnavailable", "etcd is down"))
    with pytest.raises(rpc_auth.Refused) as refused:
        access.Access(authenticate, reviews).authorize(ALICE, CONSOLE)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert "SubjectAccessReview failed: etcd is down" in refused.value.message


def test_an_invalid_token_is_unauthenticated_and_never_authorized() -> None:
    reviews = Reviews(AccessDecision(allowed=True))
    with pytest.raises(rpc_auth.Refused) as refused:
        access.Access(authenticate, reviews).authenticate([("authorization", "Bearer old")])
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.message == "invalid credentials: token has expired"
    assert reviews.asked == []


def test_cluster_scoped_wording() -> None:
    attributes = ResourceAttributes(verb="list", resource="nodes")
    assert attributes.describe() == 'list nodes in API group "" at the cluster scope'
