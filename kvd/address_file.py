"""Where a daemon listens, in a file, for tools on the same host (`kvd local up`, `kvdctl`).

A daemon given `--address-file FILE` writes it once every listener it has is bound, before it
prints its ready line, and removes it when it stops cleanly:

    {"pid": 4242, "addresses": {"handlerService": "127.0.0.1:41115", "metrics": "127.0.0.1:44597"}}

Each address is `HOST:PORT` as the daemon was told to listen, with the port it got (port 0 asks
for any free one, so only the daemon knows it). The file is replaced atomically, so a reader sees
the whole of one version or none. `pid` is the writer's: a reader that knows which process it
expects (from `DATA_DIR/cluster.json`, say) can tell a file left behind by a process that died.
The human-readable ready line says the same for people; programs read this file instead.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class AddressFileError(Exception):
    """The file is missing, unreadable, or not what a daemon writes; the message says which."""


@dataclass(frozen=True)
class Listening:
    """What one address file says: which process listens, and where."""

    pid: int
    addresses: Mapping[str, str]

    def address(self, name: str, *, path: Path) -> str:
        found = self.addresses.get(name)
        if found is None:
            raise AddressFileError(f"{path} names no {name} address (pid {self.pid})")
        return found


def bound(listen: str, port: int) -> str:
    """`listen` (`HOST:PORT`, `[v6]:PORT`) with the port a listener actually got."""
    host, _, _ = listen.rpartition(":")
    return f"{host}:{port}"


def write(path: Path, addresses: Mapping[str, str]) -> None:
    """Publish this process's `addresses` in `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"pid": os.getpid(), "addresses": dict(addresses)}, sort_keys=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(body + "\n")
    os.replace(tmp, path)


def remove(path: Path) -> None:
    """Remove `path` if this process wrote it (a successor's file is left alone)."""
    with contextlib.suppress(AddressFileError):
        if read(path).pid == os.getpid():
            path.unlink(missing_ok=True)


def read(path: Path) -> Listening:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AddressFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise AddressFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
        pid = data["pid"]
        addresses = data["addresses"]
    except (ValueError, TypeError, KeyError):
        raise AddressFileError(f"{path} is not an address file: {text[:80]!r}") from None
    valid = isinstance(pid, int) and isinstance(addresses, dict)
    if not valid or not all(isinstance(v, str) for v in addresses.values()):
        raise AddressFileError(f"{path} is not an address file: {text[:80]!r}")
    return Listening(pid=pid, addresses=addresses)
