"""`kvd controller --listen` as a process against a real `kvd local apiserver`: it serves
ControllerService over TLS, says where in its ready line and address file, reviews a caller
with its own API client, and stops cleanly. (The console through it to a real guest is
test_service.py and tests/e2e/test_console.py.)"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import grpc
import pytest

from kvd import address_file, rpc_auth, rpc_tls
from kvd.api import crds, kinds
from kvd.kube import client
from kvd.local.apiserver.tls import Certificates
from kvd.rpc.controller.v1 import controller_pb2, controller_pb2_grpc
from tests.local.apiserver.conftest import KVD, start_server
from tests.support.console import GrpcConsole
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
READY = re.compile(
    r"^kvd controller: ready t \((leading|standby)\) \(ControllerService on port (\d+)\)$"
)


def test_the_controller_serves_its_api_over_tls(tmp_path: Path) -> None:
    server = start_server(tmp_path / "api")
    proc: subprocess.Popen[str] | None = None
    try:
        raw = client.Raw(client.connect(server.kubeconfig))
        for crd in crds.all_crds():  # the controller watches DataVolumes too
            raw.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        raw.create("/api/v1/namespaces", {"metadata": {"name": "kvd"}})
        wait_for(
            "the VMI CRD to be served",
            lambda: raw.get(kinds.VMI.path("default")),
            ignoring=(client.ApiError,),
        )
        pki = Certificates(server.data_dir)
        cert, key = pki.issue("controller", ["127.0.0.1"])
        token = tmp_path / "handler-token"
        token.write_text("not needed until a console reaches a node\n")
        addresses = tmp_path / "address.json"
        args = [
            KVD, "controller", "--kubeconfig", str(server.kubeconfig), "--identity", "t",
            "--launcher-dir", str(tmp_path / "launchers"), "--listen", "127.0.0.1:0",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--handler-ca-file", str(pki.ca_cert), "--handler-token-file", str(token),
            "--address-file", str(addresses),
        ]  # fmt: skip
        with (tmp_path / "controller.log").open("w") as log:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        ready = READY.match(line)
        assert ready, f"{line!r}:\n{(tmp_path / 'controller.log').read_text()}"
        where = address_file.read(addresses).addresses["controllerService"]
        assert where == f"127.0.0.1:{ready.group(2)}"

        admin = (server.data_dir / "token").read_text().strip()
        channel = rpc_auth.authorized_channel(
            grpc.secure_channel(where, rpc_tls.channel_credentials(pki.ca_cert)), admin
        )
        stub = controller_pb2_grpc.ControllerServiceStub(channel)
        opened = controller_pb2.ConsoleOpen(
            namespace="default", name="nothere", mode=controller_pb2.CONSOLE_MODE_READ_ONLY
        )
        error = GrpcConsole(stub.Console, controller_pb2.ConsoleRequest(open=opened)).wait_error()
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
        channel.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not addresses.exists()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
