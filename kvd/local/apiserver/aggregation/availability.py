"""The APIService availability controller, as kube-aggregator's two (local and remote).

Each APIService gets one `Available` condition. A local one (no spec.service) is True with
reason `Local`. For one that names a Service: `ServiceNotFound`, `ServicePortError`,
`EndpointsNotFound` or `MissingEndpoints` when the Service does not lead to a ready endpoint
(`endpoints`), else the backend is asked for `/apis/<group>/<version>` over TLS (the
front-proxy certificate, as `system:kube-aggregator` in `system:masters`, as kube asks it):
any 2xx or 3xx within PROBE_SECONDS is `Passed`, anything else `FailedDiscoveryCheck` with the
error. Unlike kube's probe, which skips verification, the backend's certificate is verified
against the caBundle, so a wrong bundle shows here rather than only in proxied requests.

The status is written only when it changes; `lastTransitionTime` moves only when the status
does. All APIServices are checked at start, whenever an APIService, Service or EndpointSlice
changes, every RECHECK_SECONDS, and sooner (backing off from RETRY_SECONDS) while one is
failing, so a backend that comes up is noticed without a change to any object.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from typing import Any

import aiohttp

from kvd import logs
from kvd.local.apiserver.aggregation import endpoints
from kvd.local.apiserver.aggregation.transport import Transport
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.store import Closed, Gone

log = logs.get_logger(__name__)

GROUP = "apiregistration.k8s.io"
RECHECK_SECONDS = 30.0
RETRY_SECONDS = 1.0
PROBE_SECONDS = 5.0
WATCHED = {("", "services"), ("discovery.k8s.io", "endpointslices"), (GROUP, "apiservices")}
PROBE_USER = "system:kube-aggregator"


class AvailabilityController:
    def __init__(self, objects: Objects, transport: Transport) -> None:
        self.objects = objects
        self.store = objects.store
        self.registry = objects.registry
        resource = self.registry.get(GROUP, "apiservices")
        assert resource is not None
        self.resource = resource
        self.transport = transport

    async def run(self) -> None:
        watcher = self.store.watch(None, None, self.store.revision)
        retry = RETRY_SECONDS
        try:
            while True:
                failing = await self.sync()
                retry = min(retry * 2, RECHECK_SECONDS) if failing else RETRY_SECONDS
                wait = retry if failing else RECHECK_SECONDS
                try:
                    while (event := await watcher.next(timeout=wait)) is not None:
                        if (event.key.group, event.key.resource) in WATCHED:
                            retry = RETRY_SECONDS
                            break
                except Gone:
                    watcher.close()
                    watcher = self.store.watch(None, None, self.store.revision)
        except Closed:
            return
        finally:
            watcher.close()

    async def sync(self) -> bool:
        """Check every APIService once; True when one that names a Service is not available."""
        items, _ = self.store.list(self.resource.key, None)
        results = await asyncio.gather(*(self.check(a) for a in items))
        for apiservice, (status, reason, message) in zip(items, results, strict=True):
            self._write(apiservice, status, reason, message)
        return any(
            status != "True" and endpoints.service_ref(a)
            for a, (status, _, _) in zip(items, results, strict=True)
        )

    async def check(self, apiservice: dict[str, Any]) -> tuple[str, str, str]:
        """(status, reason, message) of the Available condition `apiservice` should have."""
        if endpoints.service_ref(apiservice) is None:
            return "True", "Local", "Local APIServices are always available"
        try:
            target = endpoints.resolve(self.store, self.registry, apiservice)
        except endpoints.Unresolved as exc:
            return "False", exc.reason, exc.message
        spec = apiservice.get("spec") or {}
        path = f"/apis/{spec.get('group', '')}/{spec.get('version', '')}"
        if not spec.get("group"):
            path = f"/api/{spec.get('version', '')}"
        url = self.transport.url(target, path)
        try:
            context = self.transport.context(target)
            async with asyncio.timeout(PROBE_SECONDS):
                response = await self.transport.session().get(
                    url,
                    ssl=context,
                    server_hostname=target.server_name,
                    allow_redirects=False,
                    headers={"X-Remote-User": PROBE_USER, "X-Remote-Group": "system:masters"},
                )
                response.release()
            if not 200 <= response.status < 300:
                raise _BadStatus(f"bad status from {url}: {response.status}")
        except TimeoutError:
            return (
                "False",
                "FailedDiscoveryCheck",
                f"failing or missing response from {url}: timed out",
            )
        except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError, _BadStatus) as exc:
            return "False", "FailedDiscoveryCheck", f"failing or missing response from {url}: {exc}"
        return "True", "Passed", "all checks passed"

    def _write(self, apiservice: dict[str, Any], status: str, reason: str, message: str) -> None:
        name = apiservice["metadata"]["name"]
        conditions = list((apiservice.get("status") or {}).get("conditions") or [])
        current = next((c for c in conditions if c.get("type") == "Available"), None)
        wanted = {
            "type": "Available",
            "status": status,
            "lastTransitionTime": _now(),
            "reason": reason,
            "message": message,
        }
        if current is not None:
            if (current.get("status"), current.get("reason"), current.get("message")) == (
                status,
                reason,
                message,
            ):
                return
            if current.get("status") == status:
                wanted["lastTransitionTime"] = current.get(
                    "lastTransitionTime", wanted["lastTransitionTime"]
                )
            conditions[conditions.index(current)] = wanted
        else:
            conditions.append(wanted)
        body = {
            **apiservice,
            "status": {**(apiservice.get("status") or {}), "conditions": conditions},
        }
        try:
            self.objects.update(
                Target(self.resource, "v1", "", name, "status"),
                body,
                validation="Strict",
                dry_run=False,
                manager="kube-apiserver",
            )
        except APIError as exc:  # changed or deleted meanwhile: the next pass sees it
            log.info("apiservice_status_not_written", apiservice=name, error=str(exc))
            return
        if current is None or current.get("status") != status:
            log.info(
                "apiservice_availability",
                apiservice=name,
                status=status,
                reason=reason,
                message=message,
            )


class _BadStatus(Exception):
    pass


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def available(apiservice: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Available" and c.get("status") == "True"
        for c in (apiservice.get("status") or {}).get("conditions") or []
    )
