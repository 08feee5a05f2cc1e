"""The launcher's error taxonomy; `service` maps each to one gRPC status code.

Raised by the domain manager and its helpers, never by the servicer itself, so every code path
that can fail says what kind of failure it is, and the mapping lives in one place.
"""

from __future__ import annotations


class LauncherError(Exception):
    """Base: an unexpected failure (INTERNAL); the message carries libvirt's text."""


class InvalidSpec(LauncherError):
    """The VMI is malformed or cannot be expressed as a domain (INVALID_ARGUMENT)."""


class NotDefined(LauncherError):
    """The call needs a defined domain and there is none (NOT_FOUND)."""


class Conflict(LauncherError):
    """The call conflicts with the domain's state or identity (FAILED_PRECONDITION)."""


class Unavailable(LauncherError):
    """The private libvirt daemon is not reachable right now (UNAVAILABLE); retry."""
