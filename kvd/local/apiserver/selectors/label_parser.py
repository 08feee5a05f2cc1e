"""The text grammar of ``?labelSelector=``, read as apimachinery's hand-written parser reads it.

kube-apiserver lexes the query value byte by byte and parses it by recursive descent
(``k8s.io/apimachinery/pkg/labels/selector.go``). Clients (kubectl, client-go, the Python client)
build these strings and sometimes show the server's error text to users, so this keeps the same
grammar, the same token boundaries (a NUL ends the input, ``in``/``notin`` are operators only where
an operator is expected) and the same error messages. The requirements it builds, and their
validation, are ``labels``'.
"""

from __future__ import annotations

import enum
from typing import Final

from kvd.api.labels import Operator, Requirement, selector
from kvd.local.apiserver.selectors.labels import (
    LabelSelector,
    SelectorError,
    field_invalid,
    go_quote,
    label_key_errors,
    new_requirement,
)

_BINARY_OPERATORS: Final = ", ".join(
    op.value
    for op in (
        Operator.IN,
        Operator.NOT_IN,
        Operator.EQUALS,
        Operator.DOUBLE_EQUALS,
        Operator.NOT_EQUALS,
        Operator.GREATER_THAN,
        Operator.LESS_THAN,
    )
)


class _Token(enum.Enum):
    ERROR = enum.auto()
    END = enum.auto()
    CLOSE_PAREN = enum.auto()
    COMMA = enum.auto()
    NOT = enum.auto()
    DOUBLE_EQUALS = enum.auto()
    EQUALS = enum.auto()
    GREATER_THAN = enum.auto()
    IDENTIFIER = enum.auto()
    IN = enum.auto()
    LESS_THAN = enum.auto()
    NOT_EQUALS = enum.auto()
    NOT_IN = enum.auto()
    OPEN_PAREN = enum.auto()


_KEYWORDS: Final = {
    ")": _Token.CLOSE_PAREN,
    ",": _Token.COMMA,
    "!": _Token.NOT,
    "==": _Token.DOUBLE_EQUALS,
    "=": _Token.EQUALS,
    ">": _Token.GREATER_THAN,
    "in": _Token.IN,
    "<": _Token.LESS_THAN,
    "!=": _Token.NOT_EQUALS,
    "notin": _Token.NOT_IN,
    "(": _Token.OPEN_PAREN,
}
_SPECIAL: Final = frozenset("=!(),><")
_WHITESPACE: Final = frozenset(" \t\r\n")
_OPERATOR_TOKENS: Final = {
    _Token.IN: Operator.IN,
    _Token.EQUALS: Operator.EQUALS,
    _Token.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
    _Token.GREATER_THAN: Operator.GREATER_THAN,
    _Token.LESS_THAN: Operator.LESS_THAN,
    _Token.NOT_IN: Operator.NOT_IN,
    _Token.NOT_EQUALS: Operator.NOT_EQUALS,
}


def _lex(text: str) -> list[tuple[_Token, str]]:
    """Tokens up to and including END, read as Go's byte lexer reads: a NUL reads as end of input
    (ending the token it is in, or the whole input where a token would start)."""
    tokens: list[tuple[_Token, str]] = []
    pos = 0

    def read() -> str:
        nonlocal pos
        if pos >= len(text):
            return "\0"
        pos += 1
        return text[pos - 1]

    def special() -> tuple[_Token, str]:
        # The longest run of special characters that is still a keyword: "!=" but "=" then "(".
        nonlocal pos
        best: tuple[_Token, str] | None = None
        run = ""
        while (ch := read()) != "\0":
            if ch not in _SPECIAL:
                pos -= 1
                break
            run += ch
            if run in _KEYWORDS:
                best = (_KEYWORDS[run], run)
            elif best is not None:
                pos -= 1
                break
        if best is None:  # pragma: no cover - every single special character is a keyword
            return _Token.ERROR, f"error expected: keyword found '{run}'"
        return best

    def word() -> tuple[_Token, str]:
        nonlocal pos
        chars: list[str] = []
        while (ch := read()) != "\0":
            if ch in _SPECIAL or ch in _WHITESPACE:
                pos -= 1
                break
            chars.append(ch)
        literal = "".join(chars)
        return _KEYWORDS.get(literal, _Token.IDENTIFIER), literal

    while True:
        ch = read()
        while ch in _WHITESPACE:
            ch = read()
        if ch == "\0":
            tokens.append((_Token.END, ""))
            return tokens
        pos -= 1
        tokens.append(special() if ch in _SPECIAL else word())


class _LabelParser:
    """apimachinery's parser: ``in``/``notin`` are operators only where an operator is expected."""

    def __init__(self, text: str) -> None:
        self._tokens = _lex(text)
        self._position = 0

    def _peek(self, *, values: bool = True) -> tuple[_Token, str]:
        return self._as_context(self._tokens[self._position], values)

    def _next(self, *, values: bool = True) -> tuple[_Token, str]:
        self._position += 1
        return self._as_context(self._tokens[self._position - 1], values)

    @staticmethod
    def _as_context(item: tuple[_Token, str], values: bool) -> tuple[_Token, str]:
        if values and item[0] in (_Token.IN, _Token.NOT_IN):
            return _Token.IDENTIFIER, item[1]
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token, literal = self._peek()
            if token is _Token.END:
                return requirements
            if token not in (_Token.IDENTIFIER, _Token.NOT):
                raise SelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )
            try:
                requirements.append(self._requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err}") from None
            token, literal = self._next()
            if token is _Token.END:
                return requirements
            if token is not _Token.COMMA:
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            token, literal = self._peek()
            if token not in (_Token.IDENTIFIER, _Token.NOT):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        operator: Operator | None = None
        token, key = self._next()
        if token is _Token.NOT:
            operator = Operator.DOES_NOT_EXIST
            token, key = self._next()
        if token is not _Token.IDENTIFIER:
            raise SelectorError(f"found '{key}', expected: identifier")
        if key_errors := label_key_errors(key):
            raise SelectorError(field_invalid("<nil>", go_quote(key), "; ".join(key_errors)))
        if self._peek()[0] in (_Token.END, _Token.COMMA) and operator is None:
            operator = Operator.EXISTS
        if operator is not None:
            return new_requirement(key, operator, values=[])
        token, literal = self._next(values=False)
        if token not in _OPERATOR_TOKENS:
            raise SelectorError(f"found '{literal}', expected: {_BINARY_OPERATORS}")
        operator = _OPERATOR_TOKENS[token]
        values = self._set_values() if operator in (Operator.IN, Operator.NOT_IN) else self._exact()
        return new_requirement(key, operator, values=sorted(values))

    def _set_values(self) -> set[str]:
        token, literal = self._next()
        if token is not _Token.OPEN_PAREN:
            raise SelectorError(f"found '{literal}' expected: '('")
        token, literal = self._peek()
        if token is _Token.CLOSE_PAREN:  # "()" is the set holding the empty string
            self._next()
            return {""}
        if token not in (_Token.IDENTIFIER, _Token.COMMA):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self._identifier_list()
        if self._next()[0] is not _Token.CLOSE_PAREN:  # unreachable: the list ends at ")"
            raise SelectorError(f"found '{literal}', expected: ')'")  # pragma: no cover
        return values

    def _identifier_list(self) -> set[str]:
        # Empty entries ("(,a)", "(a,,b)", "(a,)") are the empty string, as in apimachinery.
        values: set[str] = set()
        while True:
            token, literal = self._next()
            if token is _Token.IDENTIFIER:
                values.add(literal)
                after, after_literal = self._peek()
                if after is _Token.CLOSE_PAREN:
                    return values
                if after is not _Token.COMMA:
                    raise SelectorError(f"found '{after_literal}', expected: ',' or ')'")
            elif token is _Token.COMMA:
                if not values:
                    values.add("")
                after, _ = self._peek()
                if after is _Token.CLOSE_PAREN:
                    values.add("")
                    return values
                if after is _Token.COMMA:
                    self._next()
                    values.add("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def _exact(self) -> set[str]:
        if self._peek()[0] in (_Token.END, _Token.COMMA):
            return {""}
        token, literal = self._next()
        if token is not _Token.IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query value (``""`` selects everything).

    Grammar: comma-separated requirements, each ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``,
    ``k in (a,b)``, ``k notin (a,b)``, ``k>1`` or ``k<1`` (integers), whitespace between tokens.
    """
    return selector(_LabelParser(text).parse())
