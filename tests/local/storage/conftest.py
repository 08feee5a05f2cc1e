"""A real `kvd local apiserver` process with kvd's storage controller running against it, in
this process, over a volume root in the test's temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvd.kube import client
from kvd.local.storage import loop
from kvd.local.storage.controller import StorageController
from tests.local.apiserver.conftest import Server, start_server


@dataclass
class Storage:
    server: Server
    controller: StorageController
    root: Path
    raw: client.Raw

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.server.kubectl(*args, stdin=stdin, check=check).stdout


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    server = start_server(tmp_path / "data")
    root = tmp_path / "volumes"
    controller = StorageController(client.connect(server.kubeconfig), node_name="node-a", root=root)
    try:
        controller.start(timeout=30)
        yield Storage(server, controller, root, client.Raw(client.connect(server.kubeconfig)))
    finally:
        controller.stop()
        server.stop()
        for backing in root.glob("*.img"):  # a failed test must not leave devices attached
            loop.detach(backing)
