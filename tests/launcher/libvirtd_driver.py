"""A stand-in launcher for tests: run inside a kvd sandbox, it owns one `Libvirtd`, as the real
launcher will in its pod, and takes commands on stdin, one per line, answering each with one JSON
line on stdout:

    status             {"pid": ..., "restarts": ..., "seeded": ..., "ready": ...}
    wait_ready SECS    {"ok": true} or {"error": "..."}
    stop               {"stopped": true, "pid": <the last libvirtd pid>}, then it exits 0

Its first line is {"event": "ready", "uri": ..., "pid": ..., "seeded": ..., "seconds": ...}, or
{"event": "error", "message": ...} before it exits 1. End of stdin stops the daemon too, so a test
that dies takes its libvirtd with it. Logs (JSON) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kvd import logs
from kvd.launcher.virt.libvirtd import Libvirtd, LibvirtdError


def _say(**message: Any) -> None:
    print(json.dumps(message), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--caps-store", type=Path, required=True)
    args = parser.parse_args()
    logs.configure(level="debug", json=True)
    daemon = Libvirtd(args.run_dir, caps_store=args.caps_store)
    try:
        daemon.start()
    except LibvirtdError as e:
        _say(event="error", message=str(e))
        return 1
    daemon.supervise()
    _say(
        event="ready",
        uri=daemon.uri,
        pid=daemon.pid,
        seeded=daemon.seeded,
        seconds=daemon.start_seconds,
    )
    last_pid = daemon.pid
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "status":
            last_pid = daemon.pid or last_pid
            _say(
                pid=daemon.pid,
                restarts=daemon.restarts,
                seeded=daemon.seeded,
                ready=daemon.ready,
            )
        elif command == "wait_ready":
            try:
                daemon.wait_ready(float(rest[0]))
                _say(ok=True)
            except LibvirtdError as e:
                _say(error=str(e))
        elif command == "stop":
            break
        else:
            _say(error=f"unknown command {command!r}")
    last_pid = daemon.pid or last_pid
    daemon.stop()
    _say(stopped=True, pid=last_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
