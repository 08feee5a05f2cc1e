"""TokenReview and SubjectAccessReview through a real `kvd local apiserver`, as the handler and
the controller make them (with the cluster admin's client, which may create both)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kvd.kube import client, reviews
from kvd.kube.reviews import ResourceAttributes, UserInfo
from tests.local.apiserver.conftest import Server, start_server

pytestmark = pytest.mark.integration

CONSOLE = ResourceAttributes(
    verb="get",
    group="subresources.kubevirt.io",
    version="v1",
    resource="virtualmachineinstances",
    subresource="console",
    namespace="a",
    name="vm1",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("reviews") / "api")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def raw(server: Server) -> client.Raw:
    return client.Raw(client.connect(server.kubeconfig))


def admin_token(server: Server) -> str:
    return (server.data_dir / "token").read_text().strip()


def test_a_valid_token_names_its_user(server: Server, raw: client.Raw) -> None:
    reviewed = reviews.token_review(raw, admin_token(server))
    assert reviewed.authenticated and reviewed.user is not None
    assert reviewed.user.username == "kvd-admin"
    assert "system:masters" in reviewed.user.groups


def test_an_invalid_token_names_nobody(raw: client.Raw) -> None:
    reviewed = reviews.token_review(raw, "not-a-token")
    assert not reviewed.authenticated
    assert reviewed.error


def test_a_token_the_api_server_does_not_confirm_for_the_audience_asked_is_refused(
    server: Server, raw: client.Raw
) -> None:
    """The admin's token is the API server's own: asked for kvd-handler, the review must not
    vouch for it (a reviewer that asks for audiences checks the answer names one)."""
    reviewed = reviews.token_review(raw, admin_token(server), audiences=["kvd-handler"])
    assert not reviewed.authenticated
    assert "kvd-handler" in reviewed.error


def test_access_reviews(raw: client.Raw) -> None:
    admin = UserInfo("kvd-admin", groups=("system:masters",))
    assert reviews.access_review(raw, admin, CONSOLE).allowed
    nobody = UserInfo("mallory", uid="m-1", groups=("system:authenticated",), extra={"x": ("y",)})
    assert not reviews.access_review(raw, nobody, CONSOLE).allowed
