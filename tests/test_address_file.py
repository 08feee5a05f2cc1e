"""The address file a daemon writes for tools: what a reader gets back, and what it refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvd import address_file


def test_written_addresses_read_back_with_the_writers_pid(tmp_path: Path) -> None:
    path = tmp_path / "handler" / "address.json"  # the directory is made as needed
    address_file.write(path, {"handlerService": "127.0.0.1:41115", "metrics": "[::1]:9"})
    found = address_file.read(path)
    assert found.pid == os.getpid()
    assert found.address("handlerService", path=path) == "127.0.0.1:41115"
    assert found.address("metrics", path=path) == "[::1]:9"
    with pytest.raises(address_file.AddressFileError, match="names no vnc address"):
        found.address("vnc", path=path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["address.json"]  # no temp file left


def test_rewriting_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "address.json"
    address_file.write(path, {"handlerService": "127.0.0.1:1", "metrics": "127.0.0.1:2"})
    address_file.write(path, {"metrics": "127.0.0.1:3"})
    assert address_file.read(path).addresses == {"metrics": "127.0.0.1:3"}


def test_remove_leaves_another_process_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "address.json"
    path.write_text('{"pid": 1, "addresses": {"metrics": "127.0.0.1:2"}}')
    address_file.remove(path)
    assert path.exists()
    address_file.write(path, {"metrics": "127.0.0.1:2"})
    address_file.remove(path)
    assert not path.exists()
    address_file.remove(path)  # nothing there: nothing to do


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param("", "is not an address file", id="empty"),
        pytest.param("{truncated", "is not an address file", id="not-json"),
        pytest.param("[1, 2]", "is not an address file", id="a-list"),
        pytest.param('{"pid": "7", "addresses": {}}', "is not an address file", id="pid-text"),
        pytest.param('{"pid": 7, "addresses": {"m": 1}}', "is not an address file", id="port"),
    ],
)
def test_what_is_not_an_address_file_is_refused_by_name(
    tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "address.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(address_file.AddressFileError, match=message) as caught:
        address_file.read(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("listen", "port", "address"),
    [
        pytest.param("127.0.0.1:0", 41115, "127.0.0.1:41115", id="v4"),
        pytest.param("[::1]:0", 8186, "[::1]:8186", id="v6"),
        pytest.param("0.0.0.0:8186", 8186, "0.0.0.0:8186", id="fixed"),
    ],
)
def test_bound_puts_the_real_port_into_the_listen_address(
    listen: str, port: int, address: str
) -> None:
    assert address_file.bound(listen, port) == address
