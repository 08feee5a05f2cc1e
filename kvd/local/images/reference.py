"""Image references, parsed and normalized the way docker (distribution/reference) does it.

`kvd-demo`, `kvd-demo:latest`, `library/kvd-demo` and `docker.io/library/kvd-demo:latest` name one
image, so the store keys everything by the fully qualified form `normalize` returns: a registry
domain (docker.io when the first component is not one: it has a `.` or `:`, is `localhost`, or
has upper case), docker.io's `library/` for single-component names, and the tag `latest` when
neither a tag nor a digest is given. A digest (`@sha256:…`) is kept, with the tag if there is one.
`familiar` gives the short form back for display, as `docker images` shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DOMAIN: Final = "index.docker.io"
OFFICIAL_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
MAX_NAME_LENGTH: Final = 255  # distribution's limit on domain + path

_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG: Final = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST: Final = re.compile(r"([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):(.+)")
_DIGEST_HEX: Final = {"sha256": 64, "sha512": 128}


class ImageError(ValueError):
    """Bad input: the message names the file or reference and what is wrong with it."""


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """domain/path: the image without tag or digest."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.repository}{tag}{digest}"


def parse(reference: str) -> Reference:
    """The normalized parts of `reference`; ImageError when it is not a valid image reference."""
    if not reference or not reference.strip():
        raise ImageError("image reference is empty")
    if any(c.isspace() for c in reference):
        raise ImageError(f"invalid image reference {reference!r}: it contains white space")
    rest, _, digest = reference.partition("@")
    if "@" in reference:
        _check_digest(reference, digest)
    name, tag = rest, None
    last_colon, last_slash = rest.rfind(":"), rest.rfind("/")
    if last_colon > last_slash:  # a colon before the last slash is a registry port
        name, tag = rest[:last_colon], rest[last_colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise _invalid(
                reference,
                f"tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-', "
                "not starting with '.' or '-'",
            )
    domain, path = _split_domain(reference, name)
    if tag is None and not digest:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest or None)


def normalize(reference: str) -> str:
    """The fully qualified form: `kvd-demo` → `docker.io/library/kvd-demo:latest`."""
    return str(parse(reference))


def familiar(reference: str) -> str:
    """The short form of a normalized reference: `docker.io/library/kvd-demo:latest` →
    `kvd-demo:latest`, as docker shows it."""
    ref = parse(reference)
    shown = str(ref)
    if ref.domain == DEFAULT_DOMAIN:
        shown = shown.removeprefix(f"{DEFAULT_DOMAIN}/")
        if ref.path.startswith(OFFICIAL_PREFIX) and ref.path.count("/") == 1:
            shown = shown.removeprefix(OFFICIAL_PREFIX)
    return shown


def _split_domain(reference: str, name: str) -> tuple[str, str]:
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
        if not _DOMAIN.fullmatch(domain):
            raise _invalid(reference, f"bad registry {domain!r}")
        if domain == LEGACY_DOMAIN:
            domain = DEFAULT_DOMAIN
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    for component in path.split("/"):
        if _COMPONENT.fullmatch(component):
            continue
        if _COMPONENT.fullmatch(component.lower()):
            raise _invalid(reference, "repository name must be lowercase")
        what = f"{component!r} is not a valid" if component else "an empty"
        raise _invalid(
            reference,
            f"{what} name component (lowercase letters and digits, separated by '.', '_', "
            "'__' or dashes)",
        )
    if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
        raise _invalid(reference, f"the name is longer than {MAX_NAME_LENGTH} characters")
    return domain, path


def _invalid(reference: str, why: str) -> ImageError:
    return ImageError(f'invalid image reference "{reference}": {why}')


def _check_digest(reference: str, digest: str) -> None:
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise _invalid(reference, f"digest {digest!r} is not ALGORITHM:HEX")
    algorithm, hex_part = match.groups()
    length = _DIGEST_HEX.get(algorithm)
    if length is None:
        raise _invalid(
            reference,
            f"unsupported digest algorithm {algorithm!r} (use {' or '.join(_DIGEST_HEX)})",
        )
    if len(hex_part) != length or not re.fullmatch(r"[0-9a-f]+", hex_part):
        raise _invalid(reference, f"a {algorithm} digest is {length} lowercase hex digits")
