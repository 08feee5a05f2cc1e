"""The controller's operations served in one process over a real stack: a real API server
reviews the callers' tokens and rights, the controller proxies over TLS, as its own
ServiceAccount, to a real HandlerService, which proxies to a real `kvd launcher` running a real
guest (TCG). Used by test_service.py (gRPC) and test_subresources.py (HTTPS)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from kvd import rpc_auth, rpc_tls
from kvd.api import keys, kinds
from kvd.controller import access, operations, service
from kvd.controller.handlers import Handlers
from kvd.handler import auth
from kvd.handler import service as handler_service
from kvd.kube import authenticator, client, reviews
from kvd.local.apiserver.tls import Certificates
from kvd.rpc.controller.v1 import controller_pb2, controller_pb2_grpc
from kvd.rpc.launcher.v1 import launcher_pb2
from tests.kube.identities import Identities
from tests.launcher.harness import RPC_TIMEOUT, Launcher, vmi_manifest
from tests.local.apiserver.conftest import CRDS, Server, start_server
from tests.support import rfb
from tests.support.console import GrpcConsole

NS, NAME, NODE = "a", "vm1", "node-a"
VMIS = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachineinstances"
VMS = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines"
RO = controller_pb2.CONSOLE_MODE_READ_ONLY
CONTROLLER_SA = "system:serviceaccount:kvd:kvd-controller"


@dataclass
class Stack:
    api: Server
    identities: Identities
    raw: client.Raw
    address: str
    ca: Path
    handler_token: Path  # the file the controller reads its token for the handlers from
    launcher: Launcher
    operations: operations.Operations
    pki: Certificates

    def stub(self, token: str | None) -> controller_pb2_grpc.ControllerServiceStub:
        channel = grpc.secure_channel(self.address, rpc_tls.channel_credentials(self.ca))
        if token is not None:
            channel = rpc_auth.authorized_channel(channel, token)
        return controller_pb2_grpc.ControllerServiceStub(channel)

    def admin(self) -> str:
        return (self.api.data_dir / "token").read_text().strip()

    def vnc(self, token: str | None, *, name: str = NAME) -> rfb.GrpcVnc:
        return rfb.GrpcVnc(
            self.stub(token).Vnc,
            lambda data: controller_pb2.VncRequest(data=data),
            first=controller_pb2.VncRequest(open=controller_pb2.VncOpen(namespace=NS, name=name)),
        )

    def console(
        self, token: str | None, *, mode: int = RO, name: str = NAME, **kw: Any
    ) -> GrpcConsole:
        opened = controller_pb2.ConsoleOpen(
            namespace=NS, name=name, mode=mode, replay_bytes=kw.pop("replay", 1 << 20), **kw
        )
        return GrpcConsole(
            self.stub(token).Console,
            controller_pb2.ConsoleRequest(open=opened),
            what="controller console",
        )


@contextlib.contextmanager
def running_stack(base: Path, guest_dir: Path, marker: str) -> Iterator[Stack]:
    """The API server, a launcher running the guest (its user data echoes `marker`), the
    node's HandlerService and the controller's ControllerService, in this process."""
    api = start_server(base / "api")
    launcher: Launcher | None = None
    servers: list[Any] = []
    try:
        api.kubectl("apply", "-f", str(CRDS))
        api.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd", "--all")
        raw = client.Raw(client.connect(api.kubeconfig))
        identities = Identities(api.data_dir, api.kubeconfig)
        identities.service_account(NS, "default")  # and its namespace
        vmi = launcher_vmi(raw)
        launcher = Launcher(base / "launcher", guest_dir, namespace=NS, name=NAME, uid=vmi)
        launcher.start()
        launcher.define(launcher.manifest(user_data=f"#!/bin/sh\necho {marker}\n"))
        launcher.stub.LaunchDomain(
            launcher_pb2.LaunchDomainRequest(vmi_uid=launcher.uid), timeout=RPC_TIMEOUT
        )
        raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"phase": "Running", "nodeName": NODE}})
        pki = Certificates(api.data_dir)
        socket = launcher.socket

        def locate(namespace: str, name: str, uid: str) -> Path | None:
            return socket if (namespace, name, uid) == (NS, NAME, vmi) else None

        # the node's handler, as `kvd handler --listen` serves it
        cert, key = pki.issue("handler", ["127.0.0.1"])
        handler_review = functools.partial(
            reviews.token_review, raw, audiences=[rpc_auth.HANDLER_AUDIENCE]
        )
        check = auth.CallerCheck(
            authenticator.TokenAuthenticator(handler_review).authenticate, [CONTROLLER_SA]
        )
        handler = handler_service.serve(
            address="127.0.0.1:0",
            locate=locate,
            node_name=NODE,
            check=check.check,
            credentials=rpc_tls.server_credentials(cert, key),
        )
        servers.append(handler)
        raw.create(
            "/api/v1/nodes",
            {
                "metadata": {
                    "name": NODE,
                    "annotations": {keys.HANDLER_ADDRESS: f"127.0.0.1:{handler.port}"},
                }
            },
        )
        # the controller, as `kvd controller --listen` serves it
        token_file = base / "handler-token"
        token_file.write_text(
            identities.token("kvd", "kvd-controller", audiences=[rpc_auth.HANDLER_AUDIENCE])
        )
        cert, key = pki.issue("controller", ["127.0.0.1"])
        users = authenticator.TokenAuthenticator(functools.partial(reviews.token_review, raw))
        checks = access.Access(users.authenticate, functools.partial(reviews.access_review, raw))
        verbs = operations.Operations(
            access=checks,
            raw=raw,
            vmis=lambda key: _get(raw, kinds.VMI.path(*key.split("/"))),
            handlers=Handlers(
                lambda node: _get(raw, f"/api/v1/nodes/{node}"),
                ca_file=pki.ca_cert,
                token_file=token_file,
            ),
        )
        servicer = service.ControllerServicer(access=checks, operations=verbs)
        controller = service.serve(
            address="127.0.0.1:0",
            servicer=servicer,
            credentials=rpc_tls.server_credentials(cert, key),
        )
        servers.append(controller)
        yield Stack(
            api,
            identities,
            raw,
            f"127.0.0.1:{controller.port}",
            pki.ca_cert,
            token_file,
            launcher,
            verbs,
            pki,
        )
    finally:
        for server in reversed(servers):
            server.stop()
        if launcher is not None:
            launcher.close()
        api.stop()


def launcher_vmi(raw: client.Raw) -> str:
    """The VMI in the API (for the servicer's lookup); its uid, which the launcher runs."""
    manifest = vmi_manifest(namespace=NS, name=NAME, uid="", user_data="#!/bin/sh\n")
    del manifest["metadata"]["uid"]
    created = raw.create(VMIS, manifest)
    return str(created["metadata"]["uid"])


def _get(raw: client.Raw, path: str) -> dict[str, Any] | None:
    try:
        return raw.get(path)
    except client.ApiError as exc:
        if exc.not_found:
            return None
        raise
