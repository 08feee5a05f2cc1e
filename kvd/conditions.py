"""Kubernetes-style status conditions: a condition's `lastTransitionTime` moves only when its
status changes, so recomputing an unchanged status yields an equal one (and no write)."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def condition(
    before: Json | None,
    kind: str,
    ok: bool,
    reason: str | None = None,
    message: str | None = None,
    *,
    now: str,
) -> Json:
    """The condition `kind` now; `before` is the same condition in the previous status."""
    text = "True" if ok else "False"
    c: Json = {"type": kind, "status": text}
    c["lastTransitionTime"] = (
        before["lastTransitionTime"]
        if before and before.get("status") == text and before.get("lastTransitionTime")
        else now
    )
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c
