"""Validation errors that carry the field path, in kube-apiserver's style.

Every problem found while parsing, defaulting or validating an object becomes a `FieldError`
(`spec.domain.devices.disks[1].name: no volume named "x"`). They are collected, not raised one
at a time, so a user sees every mistake in a manifest at once; `ValidationError` carries them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem at one field; `path` is `spec.domain.disks[0].name`-style, "" for the root."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ValueError):
    """An object that kvd refuses, with every field error found."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid object")


class Path:
    """An immutable field path; `path / "spec"` and `path[3]` build children."""

    __slots__ = ("_text",)

    def __init__(self, text: str = "") -> None:
        self._text = text

    def __truediv__(self, name: str) -> Path:
        return Path(f"{self._text}.{name}" if self._text else name)

    def __getitem__(self, index: int | str) -> Path:
        return Path(f"{self._text}[{index}]")

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Path({self._text!r})"

    def error(self, message: str) -> FieldError:
        return FieldError(self._text, message)
