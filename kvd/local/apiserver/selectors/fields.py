"""Field selectors (``?fieldSelector=``), parsed and matched as apimachinery's ``fields`` does.

Unlike label selectors there is no grammar to speak of: kube-apiserver splits the value on
unescaped commas and each term on its first operator (``k8s.io/apimachinery/pkg/fields``), trims
nothing, and leaves which fields exist to each resource. Keeping those rules, and the error text
(an unescaped ``=`` in a value is reported by its code point, as Go's ``%v`` of a rune prints it),
means kubectl users see what a real cluster would tell them. The operators and the error type are
shared with label selectors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kvd.api.labels import Operator
from kvd.local.apiserver.selectors.labels import SelectorError


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
