"""Resource quantities (`500m`, `1Gi`, `1e3`) parsed as apimachinery's resource.ParseQuantity does.

A quantity is a signed decimal number with an optional suffix: a binary SI one (Ki, Mi, Gi, Ti,
Pi, Ei), a decimal SI one (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E-2). What does not
parse is refused when the object is decoded, with apimachinery's own error text; the value is
kept exactly as written (kube would print it canonically, `1024Mi` as `1Gi`; kvd does not).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

# apimachinery's resource.ErrFormatWrong / ErrSuffix texts
FORMAT_WRONG = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_WRONG = "unable to parse quantity's suffix"
_SHAPE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)", re.DOTALL)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")


class QuantityError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)  # the same few quantities arrive again and again
def parse(text: str) -> Fraction:
    """The quantity's exact value; QuantityError with apimachinery's message when it is none."""
    match = _SHAPE.fullmatch(text)
    if not text or match is None:
        raise QuantityError(FORMAT_WRONG)
    sign, whole, fraction, suffix = match.groups()
    if not whole and not fraction:
        raise QuantityError(FORMAT_WRONG)
    digits = Fraction(int(whole or "0"))
    if fraction:
        digits += Fraction(int(fraction), 10 ** len(fraction))
    if suffix in _BINARY:
        value = digits * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = digits * Fraction(10) ** _DECIMAL[suffix]
    elif exponent := _EXPONENT.fullmatch(suffix):
        value = digits * Fraction(10) ** int(exponent.group(1))
    elif re.fullmatch(r"[eEinumkKMGTP]*[-+]?[0-9]*", suffix):
        raise QuantityError(SUFFIX_WRONG)
    else:
        raise QuantityError(FORMAT_WRONG)
    return -value if sign == "-" else value


def parse_json(value: object) -> Fraction:
    """A quantity as it arrives in JSON: a string, or a bare number (written as its text)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(FORMAT_WRONG)
    return parse(value if isinstance(value, str) else _number_text(value))


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    return text.replace("e+", "e") if "e" in text else text
