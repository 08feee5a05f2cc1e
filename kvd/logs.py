"""structlog, configured once per process: JSON lines when stderr is not a TTY, colour otherwise.

Daemons call `configure()` first thing in `main()`; library code only calls `get_logger()` and
binds context (`vmi="ns/name"`, `uid`, `node`). Event names are snake_case; data goes in
key/values. Logs go to stderr so a daemon's stdout stays free for what it prints for users.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

_configured = False


def configure(
    *, level: str = "info", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Set up structlog and the stdlib root logger (grpc and kubernetes log through it)."""
    global _configured  # noqa: PLW0603 - configuration is process-wide by nature
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    _configured = True


def get_logger(name: str | None = None, **context: Any) -> Any:
    """A bound logger; `context` is attached to every line it writes."""
    logger = structlog.get_logger(name) if name else structlog.get_logger()
    return logger.bind(**context) if context else logger


def is_configured() -> bool:
    return _configured


def bound(**context: Any) -> Any:
    """`with logs.bound(vmi=...)`: context for every log line on this thread (or task)."""
    return structlog.contextvars.bound_contextvars(**context)
