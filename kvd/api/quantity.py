"""Kubernetes resource quantities (`128Mi`, `1024M`, `1Gi`, `0.5Gi`, `500m`, `1e3`).

Parsing follows apimachinery's `resource.Quantity` grammar: a signed decimal number and an
optional suffix, binary (Ki..Ei), decimal (n, u, m, "", k, M, G, T, P, E) or a decimal exponent
(e3, E-2). Values are kept exact as `Decimal`; the original text is kept for serialisation, so a
manifest round-trips unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: Final = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
# The CRD schema carries the same grammar, so kubectl and the API server reject what we would.
PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_RE: Final = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?$"
)


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity."""


@dataclass(frozen=True, order=False)
class Quantity:
    """An exact quantity; `text` is what the user wrote (or the canonical form we made)."""

    value: Decimal
    text: str

    @classmethod
    def parse(cls, raw: str | int | float) -> Quantity:
        if isinstance(raw, bool):
            raise QuantityError(f"quantities must be a number or a string, not {raw!r}")
        text = repr(raw) if isinstance(raw, float) else str(raw)
        match = _RE.match(text.strip()) if isinstance(raw, str) else _RE.match(text)
        if match is None or text != text.strip():
            raise QuantityError(
                f"quantities must match the regular expression '{PATTERN}', got {raw!r}"
            )
        number = Decimal(match["number"])
        suffix = match["suffix"] or ""
        try:
            if suffix in _BINARY:
                value = number * _BINARY[suffix]
            elif suffix in _DECIMAL:
                value = number * _DECIMAL[suffix]
            else:
                value = number.scaleb(int(Decimal(suffix[1:])))
        except (ArithmeticError, ValueError) as exc:
            raise QuantityError(f"quantity {raw!r} is out of range") from exc
        return cls(value=value, text=text)

    @classmethod
    def from_bytes(cls, count: int) -> Quantity:
        """The shortest exact binary form (`128Mi`), as apimachinery would print it."""
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            unit = _BINARY[suffix]
            if count and count % unit == 0:
                return cls(value=Decimal(count), text=f"{count // unit}{suffix}")
        return cls(value=Decimal(count), text=str(count))

    def bytes(self) -> int:
        """The value as whole bytes, rounded up as Kubernetes rounds memory."""
        whole = int(self.value.to_integral_value(rounding="ROUND_CEILING"))
        return whole

    def millis(self) -> int:
        """The value in thousandths (CPU millicores), rounded up."""
        return int((self.value * 1000).to_integral_value(rounding="ROUND_CEILING"))

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value
