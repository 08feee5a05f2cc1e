"""Settings are frozen dataclasses, read once at start-up from the environment (`KVD_*`).

Each daemon declares its own settings class; `from_env` fills it from `KVD_<FIELD>` variables,
converting to the field's type and naming the variable in any error, so a typo in a Helm value
fails at start-up with a clear message instead of misbehaving later.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """An environment variable that does not fit its setting."""


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    log_level: str = "info"
    log_json: bool | None = None  # None: JSON unless stderr is a TTY


def from_env(cls: type[T], environ: Mapping[str, str], *, prefix: str = "KVD_") -> T:
    """Build `cls` from `environ`; fields without a variable keep their defaults."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a settings dataclass")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        variable = f"{prefix}{f.name.upper()}"
        if variable in environ:
            values[f.name] = _convert(hints[f.name], environ[variable], variable)
    return cls(**values)


def _convert(tp: Any, raw: str, variable: str) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and len(args) == 1:  # `X | None`: an empty variable means None
        if raw == "":
            return None
        tp = args[0]
    if tp is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(f"{variable}={raw!r}: expected true or false")
    if tp in (int, float):
        try:
            return tp(raw)
        except ValueError:
            raise SettingsError(f"{variable}={raw!r}: expected {tp.__name__}") from None
    if tp is Path:
        return Path(raw)
    if tp is str:
        return raw
    raise TypeError(f"unsupported settings type {tp!r} for {variable}")
