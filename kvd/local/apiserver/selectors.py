"""Label and field selectors, parsed and matched as apimachinery does.

kube-apiserver turns ``?labelSelector=`` into a ``labels.Selector`` with a small hand-written lexer
and recursive-descent parser (``k8s.io/apimachinery/pkg/labels/selector.go``), and
``?fieldSelector=`` into a ``fields.Selector`` by splitting on unescaped commas
(``.../pkg/fields/selector.go``). Clients (kubectl, client-go, the Python client) build these
strings and sometimes show the server's error text to users, so this module follows the same
grammar, the same validation and the same error messages, quirks included (a field selector's
unescaped ``=`` is reported by its code point, as Go's ``%v`` of a rune prints it).

Both selectors are immutable values: parse once per request, then ``matches`` per object.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final


class SelectorError(ValueError):
    """A selector that does not parse or validate; the message is apimachinery's wording."""


class Operator(enum.StrEnum):
    """Label requirement operators, valued as apimachinery's ``selection.Operator`` strings."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER_THAN = "gt"
    LESS_THAN = "lt"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


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

# --- validation (k8s.io/apimachinery/pkg/util/validation), with its exact messages -------------

_NAME_RE: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_VALUE_FMT: Final = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_DNS1123_SUBDOMAIN_FMT: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_MAX_NAME_BYTES: Final = 63
_MAX_SUBDOMAIN_BYTES: Final = 253


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Go's validation.RegexError, whose "',  or '" double space clients have seen for years.
    shown = "".join((" or " if i else "") + f"'{example}', " for i, example in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _byte_len(text: str) -> int:
    # Go measures strings in bytes; a non-ASCII name is invalid anyway but its length still counts.
    return len(text.encode("utf-8", "surrogatepass"))


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid label key (``[prefix/]name``); empty when it is valid.

    The API server uses these for ``metadata.labels`` too, so the wording is apimachinery's.
    """
    errors: list[str] = []
    prefix, slash, name = key.partition("/")
    if not slash:
        name = key
    elif "/" in name:
        return [
            "a valid label key "
            + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    elif not prefix:
        errors.append("prefix part must be non-empty")
    else:
        if _byte_len(prefix) > _MAX_SUBDOMAIN_BYTES:
            errors.append(f"prefix part must be no more than {_MAX_SUBDOMAIN_BYTES} characters")
        if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            errors.append(
                "prefix part "
                + _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
            )
    if not name:
        errors.append("name part must be non-empty")
    elif _byte_len(name) > _MAX_NAME_BYTES:
        errors.append(f"name part must be no more than {_MAX_NAME_BYTES} characters")
    if not _NAME_RE.fullmatch(name):
        errors.append(
            "name part " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value (it may be empty); empty when it is valid."""
    errors: list[str] = []
    if _byte_len(value) > _MAX_NAME_BYTES:
        errors.append(f"must be no more than {_MAX_NAME_BYTES} characters")
    if value and not _NAME_RE.fullmatch(value):
        errors.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def _go_quote(text: str) -> str:
    # Go's %q for the plain strings selectors carry; json.dumps would escape non-ASCII differently.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def _go_string_slice(values: Sequence[str] | None) -> str:
    # Go's %#v of a []string, which field.Invalid prints for a bad value list.
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _invalid(path: str, bad_value: str, detail: str) -> str:
    # field.Invalid(...).Error(): a nil *field.Path prints as "<nil>".
    return f"{path}: Invalid value: {bad_value}: {detail}"


def _aggregate(errors: list[str]) -> str:
    # utilerrors.Aggregate: one error alone, several in brackets.
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


_INT64: Final = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    # strconv.ParseInt(text, 10, 64): no underscores, spaces or overflow, which int() would allow.
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


# --- label requirements and selectors ----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <op> values`` term; a selector is the AND of its requirements."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies this term; a missing key satisfies only ``!=``, ``notin``
        and ``!`` (as in Kubernetes, ``env!=prod`` selects objects without an ``env`` label)."""
        present = self.key in labels
        match self.operator:
            case Operator.IN | Operator.EQUALS | Operator.DOUBLE_EQUALS:
                return present and labels[self.key] in self.values
            case Operator.NOT_IN | Operator.NOT_EQUALS:
                return not present or labels[self.key] not in self.values
            case Operator.EXISTS:
                return present
            case Operator.DOES_NOT_EXIST:
                return not present
            case Operator.GREATER_THAN | Operator.LESS_THAN:
                if not present or len(self.values) != 1:
                    return False
                have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
                if have is None or want is None:
                    return False
                return have > want if self.operator is Operator.GREATER_THAN else have < want
        return False  # pragma: no cover - the match above is exhaustive

    def __str__(self) -> str:
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if self.operator in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {self.operator.value} ({values})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(
            self.operator, self.operator.value
        )
        return f"{self.key}{symbol}{values}"


def new_requirement(
    key: str, operator: Operator, *, values: Sequence[str] | None = None, path: str = ""
) -> Requirement:
    """Validate and build a requirement as ``labels.NewRequirement`` does.

    ``path`` prefixes field paths in messages (``key``, ``values[0][app]``); apimachinery's parser
    passes none, so its messages start at ``key``/``values``. ``values=None`` stands for Go's nil
    slice, which only shows in the wording of an error.
    """
    errors: list[str] = []
    prefix = f"{path}." if path else ""
    if key_errors := label_key_errors(key):
        errors.append(_invalid(prefix + "key", _go_quote(key), "; ".join(key_errors)))
    vals = list(values or ())
    values_path = prefix + "values"
    shown = _go_string_slice(None if values is None else vals)
    if operator in (Operator.IN, Operator.NOT_IN):
        if not vals:
            errors.append(
                _invalid(
                    values_path, shown, "for 'in', 'notin' operators, values set can't be empty"
                )
            )
    elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(vals) != 1:
            errors.append(
                _invalid(values_path, shown, "exact-match compatibility requires one single value")
            )
    elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if vals:
            errors.append(
                _invalid(
                    values_path, shown, "values set must be empty for exists and does not exist"
                )
            )
    else:
        if len(vals) != 1:
            errors.append(
                _invalid(
                    values_path, shown, "for 'Gt', 'Lt' operators, exactly one value is required"
                )
            )
        errors.extend(
            _invalid(
                f"{values_path}[{i}]",
                _go_quote(v),
                "for 'Gt', 'Lt' operators, the value must be an integer",
            )
            for i, v in enumerate(vals)
            if _parse_int64(v) is None
        )
    for i, value in enumerate(vals):
        if value_errors := label_value_errors(value):
            errors.append(
                _invalid(f"{values_path}[{i}][{key}]", _go_quote(value), "; ".join(value_errors))
            )
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, operator, tuple(vals))


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    """The AND of requirements, sorted by key as apimachinery keeps them.

    No requirements selects everything; ``NOTHING`` (from a nil ``metav1.LabelSelector``) selects
    nothing.
    """

    requirements: tuple[Requirement, ...] = ()
    selects_nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected."""
        if self.selects_nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (kube's ``Selector.Empty``)."""
        return not self.requirements and not self.selects_nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING: Final = LabelSelector()
NOTHING: Final = LabelSelector(selects_nothing=True)


def _sorted_selector(requirements: Iterable[Requirement]) -> LabelSelector:
    # sort.Sort(ByKey) is not stable, but requirements with equal keys only differ in order, which
    # matching does not see; Python's stable sort keeps them as written.
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


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
            raise SelectorError(_invalid("<nil>", _go_quote(key), "; ".join(key_errors)))
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
    return _sorted_selector(_LabelParser(text).parse())


_EXPRESSION_OPERATORS: Final = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def from_label_selector_object(obj: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (``matchLabels``, ``matchExpressions``) to a selector.

    As ``metav1.LabelSelectorAsSelector``: ``None`` selects nothing, an empty selector selects
    everything. Used for scale subresources' ``status.selector`` and for owner-less matching.
    """
    if obj is None:
        return NOTHING
    if not isinstance(obj, Mapping):
        raise SelectorError(f"a label selector must be an object, not {type(obj).__name__}")
    match_labels = obj.get("matchLabels") or {}
    expressions = obj.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError("matchLabels must be an object and matchExpressions a list")
    requirements: list[Requirement] = []
    for key in sorted(match_labels, key=str):
        value = match_labels[key]
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError(f"matchLabels must map strings to strings, not {key!r}: {value!r}")
        requirements.append(new_requirement(key, Operator.EQUALS, values=[value]))
    for expression in expressions:
        if not isinstance(expression, Mapping):
            raise SelectorError(f"a matchExpressions entry must be an object, not {expression!r}")
        raw_operator = expression.get("operator")
        operator = (
            _EXPRESSION_OPERATORS.get(raw_operator) if isinstance(raw_operator, str) else None
        )
        if operator is None:
            raise SelectorError(
                f"{_go_quote(str(raw_operator or ''))} is not a valid label selector operator"
            )
        key, values = expression.get("key", ""), expression.get("values")
        if not isinstance(key, str) or not (
            values is None or (isinstance(values, list) and all(isinstance(v, str) for v in values))
        ):
            raise SelectorError(f"a matchExpressions entry needs a string key and values: {key!r}")
        requirements.append(new_requirement(key, operator, values=values or None))
    if not requirements:
        return EVERYTHING
    return _sorted_selector(requirements)


# --- field selectors ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class FieldTerm:
    """``field=value``, ``field==value`` (the same) or ``field!=value``."""

    field: str
    operator: Operator
    value: str

    def matches(self, get: Callable[[str], str | None]) -> bool:
        """Compare against the object's value; a field the object lacks reads as ``""``."""
        equal = (get(self.field) or "") == self.value
        return not equal if self.operator is Operator.NOT_EQUALS else equal

    def __str__(self) -> str:
        symbol = "!=" if self.operator is Operator.NOT_EQUALS else "="
        return f"{self.field}{symbol}{escape_field_value(self.value)}"


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSelector:
    """The AND of field terms; which fields are allowed is the caller's to check (``fields``)."""

    terms: tuple[FieldTerm, ...] = ()

    def matches(self, get: Callable[[str], str | None]) -> bool:
        """Whether an object, read through ``get(field)``, satisfies every term."""
        return all(t.matches(get) for t in self.terms)

    @property
    def fields(self) -> set[str]:
        """Every field named, so the caller can answer ``field label not supported: <field>``."""
        return {t.field for t in self.terms}

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything."""
        return not self.terms

    def requires_exact_match(self, field: str) -> str | None:
        """The value an ``=``/``==`` term demands of ``field``, so a list can be narrowed to one
        name or node before matching; ``None`` when no such term exists."""
        for term in self.terms:
            if term.field == field and term.operator is not Operator.NOT_EQUALS:
                return term.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` so the value survives ``parse_field_selector``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(raw: str) -> str:
    out: list[str] = []
    escaping = False
    for ch in raw:
        if escaping:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaping = False
        elif ch == "\\":
            escaping = True
        elif ch in ",=":
            # Go formats the rune with %v, which prints its code point: "=" reads as 61.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaping:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_field_terms(text: str) -> list[str]:
    # Commas split terms unless escaped; the backslash stays for unescaping later.
    terms, start, escaping = [], 0, False
    for i, ch in enumerate(text):
        if escaping:
            escaping = False
        elif ch == "\\":
            escaping = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``fieldSelector`` query value (``""`` selects everything).

    No whitespace is trimmed (``a = b`` names the field ``"a "``), the first operator in a term
    splits it (field names cannot escape), and terms are checked in sorted order, so the first error
    reported is the one kube-apiserver would report.
    """
    if not text:
        return FieldSelector()
    terms: list[FieldTerm] = []
    for part in sorted(_split_field_terms(text)):
        if not part:
            continue
        for i in range(len(part)):
            op = next((o for o in ("!=", "==", "=") if part.startswith(o, i)), None)
            if op is not None:
                operator = Operator.NOT_EQUALS if op == "!=" else Operator.EQUALS
                value = _unescape_field_value(part[i + len(op) :])
                terms.append(FieldTerm(part[:i], operator, value))
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
    return FieldSelector(tuple(terms))
