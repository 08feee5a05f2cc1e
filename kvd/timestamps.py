"""Times as the Kubernetes API writes them: RFC 3339 in UTC, to the second (`metav1.Time`)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime | None:
    """An RFC 3339 time (with `Z` or an offset; a naive one taken as UTC), None if unreadable."""
    try:
        then = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return then if then.tzinfo is not None else then.replace(tzinfo=UTC)
