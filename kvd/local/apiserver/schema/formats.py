"""String `format`s a CRD schema may name, checked the way kube-apiserver checks them.

kube only honours formats from a fixed list (kube-openapi's strfmt registry, plus `int32`/`int64` on
integers and `float`/`double` on numbers) and silently drops any other, so an unknown format never
makes an object invalid. Names compare with dashes removed (`date-time` is `datetime`), as
go-openapi normalises them. The checks follow strfmt's; where Go's parser is the definition
(`email` is net/mail, `uri` is net/url) this is a close approximation, and `isbn*`, `creditcard`
and `quantity` are accepted unchecked: no kubevirt.io schema uses them.
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import re
from collections.abc import Callable

_UUID = r"[0-9a-f]{8}-?[0-9a-f]{4}-?{v}[0-9a-f]{3}-?{w}[0-9a-f]{3}-?[0-9a-f]{12}"


def _regex(pattern: str, flags: int = 0) -> Callable[[str], bool]:
    compiled = re.compile(pattern, flags)
    return lambda text: compiled.fullmatch(text) is not None


def _uuid(version: str, variant: str) -> Callable[[str], bool]:
    return _regex(_UUID.replace("{v}", version).replace("{w}", variant), re.IGNORECASE)


def _date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        return False
    try:
        datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(z|[+-][0-9]{2}:[0-9]{2})")


def _date_time(text: str) -> bool:
    # strfmt.IsDateTime: split at "t" case-insensitively, an RFC 3339 date, then a zoned time.
    parts = text.lower().split("t")
    if len(text) < 4 or len(parts) < 2 or not _date(parts[0]):
        return False
    match = _TIME.fullmatch(parts[1])
    return match is not None and match[1] <= "23" and match[2] <= "59" and match[3] <= "59"


def _email(text: str) -> bool:
    _name, address = email.utils.parseaddr(text)
    local, _, domain = address.rpartition("@")
    return bool(local and domain) and not any(c.isspace() for c in address)


def _ip(version: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        if "%" in text:  # Go's net.ParseIP has no zones
            return False
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return check


def _cidr(text: str) -> bool:
    if "/" not in text or "%" in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _uri(text: str) -> bool:
    # net/url.ParseRequestURI: an absolute URI or an absolute path, no blanks or controls.
    if not text or any(c.isspace() or ord(c) < 0x20 for c in text):
        return False
    return text.startswith("/") or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text) is not None


def _rgb(text: str) -> bool:
    match = re.fullmatch(r"rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)", text)
    return match is not None and all(int(part) <= 255 for part in match.groups())


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = _regex(_LABEL)
_DOTTED_LABELS = _regex(rf"{_LABEL}(\.{_LABEL})*")


def _long_name(text: str) -> bool:
    return len(text) <= 253 and _DOTTED_LABELS(text)


_HOST_LABEL = r"[^\W_](?:[^\W_]|-+(?=[^\W_]))*"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")


def _hostname(text: str) -> bool:
    # RFC 1034 labels of letters and digits (any script) joined by inner dashes, as strfmt allows.
    labels_fit = all(len(label) <= 63 for label in text.split("."))
    return len(text) <= 255 and labels_fit and _HOSTNAME.fullmatch(text) is not None


def _anything(_text: str) -> bool:
    return True


_HEX2 = "[0-9A-Fa-f]{2}"
_MAC = "|".join(
    [rf"{_HEX2}(?:[:-]{_HEX2}){{{n - 1}}}" for n in (6, 8, 20)]
    + [rf"[0-9A-Fa-f]{{4}}(?:\.[0-9A-Fa-f]{{4}}){{{n - 1}}}" for n in (3, 4, 10)]
)
_QUANTITY = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
_DURATION_UNIT = r"(?:ns|us|µs|ms|s|m|h|d|w)"

CHECKS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": _regex(r"[0-9a-fA-F]{24}"),
    "uri": _uri,
    "email": _email,
    "hostname": _hostname,
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": _cidr,
    "mac": _regex(_MAC),
    "uuid": _regex(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I),
    "uuid3": _uuid("3", "[0-9a-f]"),
    "uuid4": _uuid("4", "[89ab]"),
    "uuid5": _uuid("5", "[89ab]"),
    "isbn": _anything,
    "isbn10": _anything,
    "isbn13": _anything,
    "creditcard": _anything,
    "ssn": _regex(r"\d{3}[- ]?\d{2}[- ]?\d{4}", re.ASCII),
    "hexcolor": _regex(r"#?(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})"),
    "rgbcolor": _rgb,
    "byte": _regex(
        r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"
    ),
    "password": _anything,
    "date": _date,
    "duration": _regex(rf"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+){_DURATION_UNIT})+|0|\d+\s*[a-zµ]+"),
    "datetime": _date_time,
    "quantity": _regex(_QUANTITY),
    "k8sshortname": lambda t: len(t) <= 63 and _DNS_LABEL(t),
    "k8slongname": _long_name,
}


def effective(schema_type: str, fmt: object) -> str:
    """The format kube keeps for a node; one it does not support for the node's type is dropped."""
    if not isinstance(fmt, str) or not fmt:
        return ""
    if schema_type in ("", "string"):
        return fmt if fmt.replace("-", "") in CHECKS else ""
    if schema_type == "integer":
        return fmt if fmt in ("int32", "int64") else ""
    if schema_type == "number":
        return fmt if fmt in ("float", "double") else ""
    return ""


def check(fmt: str, text: str) -> bool:
    """Whether `text` is valid for an (effective) string format; numeric formats never fail here."""
    checker = CHECKS.get(fmt.replace("-", ""))
    return checker is None or checker(text)
