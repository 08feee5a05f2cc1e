"""The parser half of Kubernetes' JSONPath: expression text to a tree of steps.

client-go's ``util/jsonpath`` parser is a scanner that pushes a node for each step it recognises;
this follows it so that the same expressions parse and the ones it refuses fail with its wording
(``unrecognized character in action: U+0023 '#'``). Parsing is kept apart from evaluation because
an expression is parsed once and then evaluated many times (a printer column's path for every row
of a table); ``jsonpath`` walks the tree this builds and is the API callers use.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final


class JSONPathError(ValueError):
    """An expression that does not parse, or an evaluation that fails (client-go's wording)."""


# --- the tree: one node per step, evaluated left to right by jsonpath ---------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """``.name`` or ``['name']``: that key of each object."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Wildcard:
    """``.*``: every value of each object or list."""


@dataclasses.dataclass(frozen=True, slots=True)
class Recursive:
    """``..``: every non-empty object or list at or below each value, for the next step."""


@dataclasses.dataclass(frozen=True, slots=True)
class Slice:
    """``[i]``, ``[start:end]`` or ``[start:end:step]`` of each list (``[*]`` is ``[:]``)."""

    start: int | None
    end: int | None
    step: int | None
    single: bool  # [i]: the end is i+1, counted from the end of the list when i is negative


@dataclasses.dataclass(frozen=True, slots=True)
class Union:
    """``[a,b]``: every branch evaluated from the same values, results concatenated."""

    branches: tuple[tuple[Node, ...], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Literal:
    """A quoted string, a number or ``true``/``false``, as filters compare them."""

    value: str | int | float | bool


@dataclasses.dataclass(frozen=True, slots=True)
class Filter:
    """``[?(@.x)]`` (``operator`` "exists") or ``[?(@.x == 1)]``: the items that pass."""

    left: tuple[Node, ...]
    operator: str  # "exists" or a comparison
    right: tuple[Node, ...]


Node = Field | Wildcard | Recursive | Slice | Union | Literal | Filter


# --- parsing -----------------------------------------------------------------------------------

_TERMINATORS: Final = frozenset(" \t\r\n.,[]$@{}")
_SLICE: Final = re.compile(r"(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?")
_DICT_KEY: Final = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_COMPARISON: Final = re.compile(r"([^!<>=]+)([!<>=~]+)(.+)", re.DOTALL)
_OPERATORS: Final = frozenset({"==", "!=", "<", ">", "<=", ">="})
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "/": "/"}


def _char(ch: str) -> str:
    # Go's %#U, which client-go uses to name a character it cannot parse.
    return f"U+{ord(ch):04X} '{ch}'"


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self.nodes: list[Node] = []

    def parse(self) -> tuple[Node, ...]:
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if text.startswith("[?(", self._pos):
                self._filter()
            elif text.startswith("..", self._pos):
                self._recursive()
            elif ch in " @$":  # spaces, the current object and the root are no-ops here
                self._pos += 1
            elif ch == "[":
                self._array()
            elif ch in "'\"":
                self._quote(ch)
            elif ch == ".":
                self._pos += 1
                self._field()
            elif ch in "+-" or ch.isdigit():
                self._number()
            elif ch == "_" or ch.isalnum():
                self._identifier()
            elif ch in "\r\n":
                raise JSONPathError("unclosed action")
            elif ch in "{}":
                raise JSONPathError("only one {...} expression is supported")
            else:
                raise JSONPathError(f"unrecognized character in action: {_char(ch)}")
        return tuple(self.nodes)

    def _scan_word(self) -> str:
        start = self._pos
        while self._pos < len(self._text) and self._text[self._pos] not in _TERMINATORS:
            self._pos += 2 if self._text[self._pos] == "\\" else 1
        self._pos = min(self._pos, len(self._text))
        return self._text[start : self._pos]

    def _field(self) -> None:
        word = self._scan_word()
        self.nodes.append(Wildcard() if word == "*" else Field(word.replace("\\", "")))

    def _recursive(self) -> None:
        if self.nodes and isinstance(self.nodes[-1], Recursive):
            raise JSONPathError("invalid multiple recursive descent")
        self._pos += 2
        self.nodes.append(Recursive())
        if self._pos < len(self._text) and (
            self._text[self._pos] == "_" or self._text[self._pos].isalnum()
        ):
            self._field()

    def _number(self) -> None:
        start = self._pos
        if self._text[self._pos] in "+-":
            self._pos += 1
        while self._pos < len(self._text) and (
            self._text[self._pos] == "." or self._text[self._pos].isdigit()
        ):
            self._pos += 1
        literal = self._text[start : self._pos]
        try:
            self.nodes.append(Literal(int(literal)))
        except ValueError:
            try:
                self.nodes.append(Literal(float(literal)))
            except ValueError:
                raise JSONPathError(f"cannot parse number {literal}") from None

    def _identifier(self) -> None:
        word = self._scan_word()
        if word in ("true", "false"):
            self.nodes.append(Literal(word == "true"))
        elif word in ("range", "end"):
            raise JSONPathError(f"{word!r} templates are not supported in a column path")
        else:
            raise JSONPathError(f"unrecognized identifier {word} (a field needs a leading '.')")

    def _quote(self, quote: str) -> None:
        start, self._pos = self._pos, self._pos + 1
        while True:
            if self._pos >= len(self._text) or self._text[self._pos] == "\n":
                raise JSONPathError("unterminated quoted string")
            ch = self._text[self._pos]
            self._pos += 1
            if ch == quote and self._text[self._pos - 2] != "\\":
                break
        self.nodes.append(Literal(_unquote(self._text[start : self._pos])))

    def _array(self) -> None:
        end = self._text.find("]", self._pos)
        newline = self._text.find("\n", self._pos)
        if end < 0 or 0 <= newline < end:
            raise JSONPathError("unterminated array")
        inside, self._pos = self._text[self._pos + 1 : end], end + 1
        if inside == "*":
            inside = ":"
        if "," in inside:
            self.nodes.append(
                Union(tuple(_Parser(f"[{part.strip(' ')}]").parse() for part in inside.split(",")))
            )
        elif key := _DICT_KEY.fullmatch(inside):
            self.nodes.append(Field((key[1] if key[1] is not None else key[2]).replace("\\", "")))
        else:
            self.nodes.append(_slice(inside))

    def _filter(self) -> None:
        self._pos += 3
        start, opened, closed, quote = self._pos, False, False, ""
        while True:
            if self._pos >= len(self._text) or self._text[self._pos] == "\n":
                raise JSONPathError("unterminated filter")
            ch = self._text[self._pos]
            self._pos += 1
            if ch in "'\"":
                if not opened:
                    opened, quote = True, ch
                elif ch == quote and self._text[self._pos - 2] != "\\":
                    closed = True
            elif ch == ")" and opened == closed:
                break
        if self._text[self._pos : self._pos + 1] != "]":
            raise JSONPathError("unclosed array expect ]")
        inside, self._pos = self._text[start : self._pos - 1], self._pos + 1
        comparison = _COMPARISON.fullmatch(inside)
        if comparison is None:
            self.nodes.append(Filter(_Parser(inside).parse(), "exists", ()))
            return
        left, operator, right = comparison.groups()
        if operator not in _OPERATORS:
            raise JSONPathError(f"unrecognized filter operator {operator}")
        self.nodes.append(Filter(_Parser(left).parse(), operator, _Parser(right).parse()))


def _slice(inside: str) -> Slice:
    match = _SLICE.fullmatch(inside)
    if match is None:
        raise JSONPathError(f"invalid array index {inside}")
    parts = [match[1], *((g[1:] if g else None) for g in (match[2], match[3]))]

    def number(text: str | None) -> int | None:
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise JSONPathError(f"array index {text} is not a number") from None

    start = number(parts[0])
    if match[2] is None:  # [i]: one element
        return Slice(start, None, None, single=True)
    return Slice(start, number(parts[1]), number(parts[2]), single=False)


def _unquote(literal: str) -> str:
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        escape = body[i + 1 : i + 2]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            i += 2
        elif escape in ("x", "u", "U") and (
            digits := re.fullmatch(
                r"[0-9a-fA-F]+", body[i + 2 : i + 2 + {"x": 2, "u": 4, "U": 8}[escape]]
            )
        ):
            out.append(chr(int(digits[0], 16)))
            i += 2 + len(digits[0])
        else:
            raise JSONPathError(f"unquote string {literal} error invalid syntax")
    return "".join(out)


def parse(text: str) -> tuple[Node, ...]:
    """The steps of an expression stripped of its ``{...}``; ``JSONPathError`` if it is invalid."""
    return _Parser(text).parse()
