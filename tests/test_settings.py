from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvd import logs, settings


@dataclass(frozen=True, kw_only=True)
class Example:
    run_dir: Path = Path("/run/kvd")
    grace_seconds: int = 30
    allow_emulation: bool = False
    node_name: str | None = None


def test_from_env_converts_and_keeps_defaults() -> None:
    s = settings.from_env(
        Example, {"KVD_GRACE_SECONDS": "5", "KVD_ALLOW_EMULATION": "yes", "OTHER": "x"}
    )
    assert s == Example(grace_seconds=5, allow_emulation=True)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({"KVD_GRACE_SECONDS": "soon"}, "KVD_GRACE_SECONDS='soon': expected int"),
        pytest.param({"KVD_ALLOW_EMULATION": "maybe"}, "KVD_ALLOW_EMULATION='maybe': expected"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(settings.SettingsError, match=message):
        settings.from_env(Example, environ)


def test_empty_optional_is_none() -> None:
    assert settings.from_env(Example, {"KVD_NODE_NAME": ""}).node_name is None
    assert settings.from_env(Example, {"KVD_NODE_NAME": "n1"}).node_name == "n1"


def test_json_logs_with_bound_context_and_stdlib_records() -> None:
    stream = io.StringIO()
    logs.configure(level="info", json=True, stream=stream)
    logs.get_logger(vmi="default/demo").info("pod_created", pod="virt-launcher-demo-x")
    logs.get_logger().debug("not_shown")
    logging.getLogger("grpc").warning("from %s", "grpc")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "pod_created"
    assert lines[0]["vmi"] == "default/demo" and lines[0]["level"] == "info"
    assert lines[1]["event"] == "from grpc" and lines[1]["level"] == "warning"
    assert len(lines) == 2


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        logs.configure(level="loud", stream=io.StringIO())
