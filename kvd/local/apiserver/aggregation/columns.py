"""`kubectl get apiservices` columns, as kube-aggregator prints them: SERVICE (`ns/name`, or
`Local`), AVAILABLE (the condition's status, with its reason when it is not True)."""

from __future__ import annotations

from typing import Any


def service(apiservice: dict[str, Any]) -> str:
    ref = (apiservice.get("spec") or {}).get("service")
    if not isinstance(ref, dict):
        return "Local"
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}"


def available(apiservice: dict[str, Any]) -> str:
    for c in (apiservice.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Available":
            status = str(c.get("status", "Unknown"))
            return status if status == "True" else f"{status} ({c.get('reason', '')})"
    return "Unknown"
