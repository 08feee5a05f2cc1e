"""The controller's way to a node's HandlerService: address, TLS and its own identity.

A node's handler publishes where it listens as the node annotation `kvd.io/handler-address`
(`keys.HANDLER_ADDRESS`), which the controller reads from its node cache. The channel is TLS,
verified against the CA bundle the controller is given (`--handler-ca-file`, read at each
connection so a rotated bundle takes effect), the address's host included, or instead the one
name every handler's certificate carries (`--handler-server-name`: on a real cluster handlers
listen on pod IPs, which no certificate made ahead of time can name); every call carries
the controller's ServiceAccount token for the handler's audience (`--handler-token-file`, a
projected token the kubelet rotates, read again whenever it changes). The handler admits
nobody else.

A channel is opened per call and closed with it: console sessions are few and long, and a
handler that restarted on another port is found at its new address on the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from kvd import rpc_auth, rpc_tls
from kvd.api import keys
from kvd.rpc.handler.v1 import handler_pb2_grpc

Json = dict[str, Any]
NodeLookup = Callable[[str], Json | None]
"""node name → the Node from the controller's cache, or None."""


class HandlerUnreachable(Exception):
    """The node has no handler serving, as far as its annotation says; the message says why."""


class HandlerConfigError(Exception):
    """The controller cannot make a call it would be admitted with (no CA bundle, no token):
    kvd is misconfigured; the message names the file."""


class Handlers:
    def __init__(
        self, nodes: NodeLookup, *, ca_file: Path, token_file: Path, server_name: str = ""
    ) -> None:
        self._nodes = nodes
        self._ca_file = ca_file
        self._token = rpc_auth.TokenFile(token_file)
        # "" = the address's host; else the name the certificate must carry wherever it is
        self._options = [("grpc.ssl_target_name_override", server_name)] if server_name else []

    def address(self, node_name: str) -> str:
        node = self._nodes(node_name)
        if node is None:
            raise HandlerUnreachable(f"node {node_name} does not exist")
        annotations = node.get("metadata", {}).get("annotations") or {}
        where = annotations.get(keys.HANDLER_ADDRESS)
        if not where:
            raise HandlerUnreachable(
                f"the handler of node {node_name} does not serve HandlerService "
                f"(the node has no {keys.HANDLER_ADDRESS} annotation)"
            )
        return str(where)

    def connect(self, node_name: str) -> tuple[grpc.Channel, handler_pb2_grpc.HandlerServiceStub]:
        """A channel to the node's handler (the caller closes it), and its stub."""
        address = self.address(node_name)
        try:
            credentials = rpc_tls.channel_credentials(self._ca_file)
            self._token()  # a missing token is kvd's misconfiguration: say so before dialing
        except (rpc_tls.TLSError, rpc_auth.TokenError) as exc:
            raise HandlerConfigError(str(exc)) from None
        channel = rpc_auth.authorized_channel(
            grpc.secure_channel(address, credentials, options=self._options), self._token
        )
        return channel, handler_pb2_grpc.HandlerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
