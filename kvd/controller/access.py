"""Who is calling ControllerService, and may they: TokenReview, then SubjectAccessReview.

As KubeVirt's virt-api does for `subresources.kubevirt.io`: the caller's bearer token (from
their kubeconfig) is reviewed for the API server's own audience, which yields the user's name,
uid, groups and extra fields (`kvd.kube.authenticator`, cached briefly); then each call asks
the API server whether that user may do the call's verb on its subresource in the object's
namespace (`virtualmachineinstances/console`, `get`, …). RBAC written for KubeVirt therefore
means the same here, and kvd keeps no policy of its own.

Refusals carry the status code the contract gives them and a message in kube-apiserver's words
(`User "alice" cannot get virtualmachineinstances/console in API group
"subresources.kubevirt.io" in the namespace "a"`), never the token. Authorization comes before
any lookup, so a caller without rights learns nothing about which objects exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grpc

from kvd import logs, rpc_auth
from kvd.api import rbac
from kvd.kube.client import ApiError
from kvd.kube.reviews import AccessDecision, ResourceAttributes, UserInfo

log = logs.get_logger(__name__)

Authenticate = Callable[[str], UserInfo]
ReviewAccess = Callable[[UserInfo, ResourceAttributes], AccessDecision]
Metadata = Iterable[tuple[str, str | bytes]] | None
VERSION = "v1"


def subresource(
    resource: str, name: str, verb: str, namespace: str, obj: str
) -> ResourceAttributes:
    """`verb` on `resource/name` of the object `namespace/obj` in subresources.kubevirt.io."""
    return ResourceAttributes(
        verb=verb,
        group=rbac.SUBRESOURCES,
        version=VERSION,
        resource=resource,
        subresource=name,
        namespace=namespace,
        name=obj,
    )


class Access:
    def __init__(self, authenticate: Authenticate, review_access: ReviewAccess) -> None:
        self._authenticate = authenticate
        self._review_access = review_access

    def authenticate(self, metadata: Metadata) -> UserInfo:
        """The caller; `rpc_auth.Refused` (UNAUTHENTICATED, or UNAVAILABLE when the API server
        cannot be asked) otherwise."""
        return rpc_auth.caller(metadata, self._authenticate)

    def authorize(self, user: UserInfo, attributes: ResourceAttributes) -> None:
        """Nothing when `user` may; `rpc_auth.Refused` (PERMISSION_DENIED, or UNAVAILABLE)
        otherwise."""
        try:
            decision = self._review_access(user, attributes)
        except ApiError as exc:
            raise rpc_auth.Refused(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot authorize the call: the API server's SubjectAccessReview failed: "
                f"{exc.message}",
            ) from None
        if decision.allowed:
            return
        message = f'User "{user.username}" cannot {attributes.describe()}'
        why = decision.reason or decision.evaluation_error
        if why:
            message += f": {why}"
        log.info("call_forbidden", user=user.username, reason=message)
        raise rpc_auth.Refused(grpc.StatusCode.PERMISSION_DENIED, message)
