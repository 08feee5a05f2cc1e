"""Who calls a kvd service in tests: ServiceAccounts and users of a real `kvd local apiserver`,
with the tokens the API server issues (TokenRequest) or signs (`kvd local token`), including
the ones a service must refuse: expired, or issued for another audience."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvd.kube import client

PAST = 7200.0  # how long ago an expired token was issued (valid for an hour)


@dataclass
class Identities:
    data_dir: Path  # the API server's (its signing key is under pki/)
    kubeconfig: Path  # an admin's, who may make ServiceAccounts and ask for their tokens

    @property
    def raw(self) -> client.Raw:
        return client.Raw(client.connect(self.kubeconfig))

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        """The ServiceAccount, made (with its namespace) when absent."""
        raw = self.raw
        for path, body in (
            ("/api/v1/namespaces", {"metadata": {"name": namespace}}),
            (f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}),
        ):
            try:
                raw.create(path, body)
            except client.ApiError as exc:
                if exc.status != 409:
                    raise
        return raw.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")

    def token(
        self, namespace: str, name: str, *, audiences: list[str] | None = None, seconds: int = 3600
    ) -> str:
        """A TokenRequest's token for the ServiceAccount (`kubectl create token`)."""
        self.service_account(namespace, name)
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if audiences is not None:
            spec["audiences"] = audiences
        answer = self.raw.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(answer["status"]["token"])

    def expired_token(self, namespace: str, name: str, *, audiences: list[str]) -> str:
        """A token for the ServiceAccount, signed with the cluster's key, that expired an hour
        ago (TokenRequest issues none such)."""
        from kvd.local.apiserver.serviceaccounts import jwt, tokenrequest  # noqa: PLC0415

        account = self.service_account(namespace, name)
        key = jwt.SigningKey.load(self.data_dir)
        token, _ = tokenrequest.issue(
            key, account, audiences=audiences, expiration_seconds=3600, now=time.time() - PAST
        )
        return token

    def user_token(self, user: str, *groups: str) -> str:
        """A user's token, as `kvd local token --user USER --group G…` prints it."""
        from kvd.local.apiserver import serviceaccounts  # noqa: PLC0415

        return serviceaccounts.user_token(self.data_dir, user, groups, seconds=3600)
