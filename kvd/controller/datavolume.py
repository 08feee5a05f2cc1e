"""The DataVolume controller: each DataVolume gets its PVC filled by an importer pod, and a status
that says how far it got (CDI's pkg/controller/datavolume + import-controller, in one).

Level-triggered: DV, claim and importer-pod events enqueue the DV's key; `reconcile` reads all
three from the caches and moves the DV on:

  Pending (claim made, not bound yet) → ImportScheduled (claim bound, importer pod waiting)
  → ImportInProgress (it runs; `status.progress` scraped from its metrics port) → Succeeded
  (pod deleted) | Failed.

The importer pod is always the claim's first consumer, so a WaitForFirstConsumer claim is bound
where the importer is scheduled and the DataVolume goes from Pending straight on, as CDI does
without its HonorWaitForFirstConsumer gate or with `storage.bind.immediate.requested` (which the
claim carries, saying so). CDI's `WaitForFirstConsumer` phase means "no importer until a workload
pod is scheduled" (KubeVirt's ephemeral pod), which kvd does not do: its VMs wait for their
DataVolumes before they make a pod. A pod that fails is deleted and made again after a back-off
(`status.restartCount`, CDI's Restarts column); its last log line says whether retrying can
help. A failure that cannot be mended (an HTTP 404, a refused image) or MAX_RESTARTS of them
end the DV `Failed` with the importer's message: CDI itself retries forever, but a 404 never
turns into a 200, and issue 19 wants the user told. Deleting the DV deletes the claim and pod
through their owner references.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from kvd import logs
from kvd.api import datavolume as dvapi
from kvd.api.errors import ValidationError
from kvd.conditions import condition as make_condition
from kvd.controller import dvrender
from kvd.importer import progress as import_progress
from kvd.importer import result as import_result
from kvd.kube import events, informer
from kvd.kube.client import ApiError, Raw

log = logs.get_logger(__name__)

Json = dict[str, Any]

MAX_RESTARTS: Final = 4
POLL: Final = 2.0  # seconds between two scrapes of a running importer's progress


def backoff(restarts: int) -> float:
    """Seconds before the importer pod is made again after its `restarts`-th failure."""
    return float(min(60, 2**restarts))


class DataVolumeController:
    def __init__(
        self,
        *,
        raw: Raw,
        dvs: informer.Informer,
        claims: informer.Informer,
        pods: informer.Informer,
        recorder: events.Recorder,
        image: Callable[[], str] = lambda: "",
        scrape: Callable[[str, str], float | None] = import_progress.scrape,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.raw = raw
        self.dvs = dvs
        self.claims = claims
        self.pods = pods
        self.recorder = recorder
        self.image = image
        self.scrape = scrape
        self.clock = clock
        self._retry_at: dict[str, float] = {}

    # --- events -------------------------------------------------------------------------------

    def on_dv(self, _kind: str, dv: Json, enqueue: Callable[[str], None]) -> None:
        enqueue(informer.key_of(dv))

    def on_owned(self, _kind: str, obj: Json, enqueue: Callable[[str], None]) -> None:
        """A claim or importer pod: its DataVolume (the controller owner) is enqueued."""
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == dvapi.KIND and ref.get("controller"):
                enqueue(f"{obj['metadata']['namespace']}/{ref['name']}")

    # --- reconcile ----------------------------------------------------------------------------

    def reconcile(self, key: str) -> float | None:
        dv = self.dvs.get(key)
        if dv is None or dv["metadata"].get("deletionTimestamp"):
            self._retry_at.pop(key, None)
            return None  # the claim and pod go with it (owner references)
        status = dict(dv.get("status") or {})
        if status.get("phase") in (dvapi.SUCCEEDED, dvapi.FAILED):
            return None
        try:
            return self._sync(key, dv, status)
        except (ValidationError, dvrender.RenderError) as exc:
            self._fail(dv, status, "Error", str(exc))
            return None

    def _sync(self, key: str, dv: Json, status: Json) -> float | None:
        parsed = dvapi.load(dv)
        namespace, name = key.split("/", 1)
        status["claimName"] = name
        status.setdefault("restartCount", 0)
        claim = self.claims.get(key)
        if claim is None:
            claim = self._create_claim(dv, parsed, status)
            if claim is None:
                return None
        elif not _owned_by(claim, dv):
            self._fail(
                dv,
                status,
                "ErrClaimNotValid",
                f"PersistentVolumeClaim {name} already exists and is not owned by this DataVolume",
            )
            return None
        bound = dvrender.claim_bound(claim)
        now = _now()
        self._condition(status, dvapi.BOUND, bound, *_bound_reason(claim), now=now)
        pod = self.pods.get(f"{namespace}/{dvrender.importer_name(name)}")
        if pod is not None and not _owned_by(pod, dv):
            pod = None  # a stale pod of an earlier DV of this name: GC takes it
        if pod is None:
            wait = self._retry_at.get(key, 0.0) - self.clock()
            if wait > 0:
                self._write(dv, status)
                return wait
            pod = self._create_pod(dv, parsed, claim, status)
            status["phase"] = dvapi.IMPORT_SCHEDULED if bound else dvapi.PENDING
            status.setdefault("progress", "N/A")
            self._write(dv, status)
            return None
        return self._follow(key, dv, status, pod, bound=bound)

    def _follow(self, key: str, dv: Json, status: Json, pod: Json, *, bound: bool) -> float | None:
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        now = _now()
        if phase == "Pending":
            # CDI's DataVolume is Pending while its claim is, whatever the pod does
            status["phase"] = dvapi.IMPORT_SCHEDULED if bound else dvapi.PENDING
            self._condition(status, dvapi.RUNNING, False, *_waiting(pod), now=now)
            self._write(dv, status)
            return None
        if phase == "Running":
            status["phase"] = dvapi.IMPORT_IN_PROGRESS
            ip = (pod.get("status") or {}).get("podIP")
            value = self.scrape(ip, dv["metadata"]["uid"]) if ip else None
            if value is not None:
                status["progress"] = f"{value:.2f}%"
            self._condition(status, dvapi.RUNNING, True, "Pod is running", None, now=now)
            self._condition(status, dvapi.READY, False, "TransferRunning", None, now=now)
            self._write(dv, status)
            return POLL
        outcome = self._outcome(pod)
        if phase == "Succeeded" and (outcome is None or outcome.succeeded):
            status["phase"] = dvapi.SUCCEEDED
            status["progress"] = "100.0%"
            self._condition(status, dvapi.RUNNING, False, dvapi.REASON_COMPLETED, None, now=now)
            self._condition(status, dvapi.READY, True, None, None, now=now)
            self._write(dv, status)
            self._delete_pod(pod)
            self._retry_at.pop(key, None)
            self.recorder.event(
                dv, events.NORMAL, "ImportSucceeded", "Successfully imported into PVC"
            )
            log.info("datavolume_succeeded", dv=key)
            return None
        message = outcome.message if outcome else _terminated_message(pod)
        retryable = outcome.retryable if outcome else True
        restarts = int(status.get("restartCount") or 0)
        if not retryable or restarts >= MAX_RESTARTS:
            why = message if not retryable else f"{message} (gave up after {restarts} restarts)"
            self._delete_pod(pod)
            self._fail(dv, status, dvapi.REASON_ERROR, why)
            return None
        status["restartCount"] = restarts + 1
        self._condition(status, dvapi.RUNNING, False, dvapi.REASON_ERROR, message, now=now)
        self._write(dv, status)
        self._delete_pod(pod)
        delay = backoff(restarts + 1)
        self._retry_at[key] = self.clock() + delay
        log.warning("importer_failed", dv=key, message=message, restarts=restarts + 1, retry=delay)
        return delay

    # --- steps --------------------------------------------------------------------------------

    def _create_claim(self, dv: Json, parsed: dvapi.DataVolume, status: Json) -> Json | None:
        meta = dv["metadata"]
        source_claim = None
        source = parsed.spec.source
        if source is not None and source.pvc is not None:
            source_claim = self.claims.get(f"{source.pvc.namespace}/{source.pvc.name}")
            if source_claim is None:
                status["phase"] = dvapi.PENDING
                self._condition(
                    status,
                    dvapi.BOUND,
                    False,
                    dvapi.REASON_NOT_FOUND,
                    f"source PVC {source.pvc.namespace}/{source.pvc.name} not found",
                    now=_now(),
                )
                self._write(dv, status)
                return None
        body = dvrender.claim(parsed, dv, source_claim=source_claim)
        try:
            created: Json = self.raw.create(
                f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims", body
            )
        except ApiError as exc:
            if exc.status == 409:
                return None  # made already: its event brings us back
            if exc.status in (400, 403, 422):
                self._fail(dv, status, "ErrClaimNotValid", f"cannot create its PVC: {exc.message}")
                return None
            raise
        status["phase"] = dvapi.PENDING
        log.info("datavolume_claim_created", dv=informer.key_of(dv))
        return created

    def _create_pod(self, dv: Json, parsed: dvapi.DataVolume, claim: Json, status: Json) -> Json:
        body = dvrender.importer_pod(parsed, dv, claim, image=self.image())
        meta = dv["metadata"]
        try:
            created: Json = self.raw.create(f"/api/v1/namespaces/{meta['namespace']}/pods", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            return body  # still there from before (being deleted): its events bring us back
        self.recorder.event(
            dv, events.NORMAL, "ImportScheduled", f"Import into {meta['name']} scheduled"
        )
        log.info("importer_created", dv=informer.key_of(dv), pod=created["metadata"]["name"])
        return created

    def _delete_pod(self, pod: Json) -> None:
        meta = pod["metadata"]
        try:
            self.raw.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
        except ApiError as exc:
            if not exc.not_found:
                raise

    def _outcome(self, pod: Json) -> import_result.Outcome | None:
        meta = pod["metadata"]
        try:
            text = self.raw.text(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/log",
                {"container": "importer", "tailLines": "20"},
            )
        except ApiError as exc:
            log.warning("importer_log_unreadable", pod=meta["name"], error=exc.message)
            return None
        return import_result.parse(text)

    def _fail(self, dv: Json, status: Json, reason: str, message: str) -> None:
        now = _now()
        status["phase"] = dvapi.FAILED
        self._condition(status, dvapi.RUNNING, False, reason, message, now=now)
        self._condition(status, dvapi.READY, False, reason, message, now=now)
        self._write(dv, status)
        self.recorder.event(dv, events.WARNING, reason, message)
        log.warning("datavolume_failed", dv=informer.key_of(dv), reason=reason, message=message)

    @staticmethod
    def _condition(
        status: Json, kind: str, ok: bool, reason: str | None, message: str | None, *, now: str
    ) -> None:
        conditions = list(status.get("conditions") or [])
        before = next((c for c in conditions if c.get("type") == kind), None)
        new = make_condition(before, kind, ok, reason, message, now=now)
        new["lastHeartbeatTime"] = (before or {}).get("lastHeartbeatTime", now)
        if before is not None and {k: v for k, v in before.items() if k != "lastHeartbeatTime"} == {
            k: v for k, v in new.items() if k != "lastHeartbeatTime"
        }:
            return
        new["lastHeartbeatTime"] = now
        status["conditions"] = [
            *(c for c in conditions if c.get("type") != kind),
            new,
        ]
        order = {dvapi.BOUND: 0, dvapi.RUNNING: 1, dvapi.READY: 2}
        status["conditions"].sort(key=lambda c: order.get(c["type"], 3))

    def _write(self, dv: Json, status: Json) -> None:
        old = dv.get("status") or {}
        if status == old:
            return
        meta = dv["metadata"]
        changed = {k: v for k, v in status.items() if old.get(k) != v}
        try:
            self.raw.merge_patch(
                dvapi.path(meta["namespace"], meta["name"]) + "/status", {"status": changed}
            )
        except ApiError as exc:
            if not exc.not_found:
                raise
        if status.get("phase") != old.get("phase"):
            log.info("datavolume_phase", dv=informer.key_of(dv), phase=status.get("phase"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owned_by(obj: Json, dv: Json) -> bool:
    uid = dv["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _bound_reason(claim: Json) -> tuple[str, str]:
    name = claim["metadata"]["name"]
    if dvrender.claim_bound(claim):
        return dvapi.REASON_BOUND, f"PVC {name} Bound"
    phase = (claim.get("status") or {}).get("phase") or "Pending"
    return dvapi.REASON_CLAIM_PENDING, f"PVC {name} {phase}"


def _waiting(pod: Json) -> tuple[str, str | None]:
    """Why a pending importer waits: its container's reason, or the scheduler's (a claim that
    cannot be provisioned, say), so the DataVolume's Running condition tells the user."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("message"):
            return "Pending", str(waiting["message"])
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("reason") or "Pending"), condition.get("message")
    return "Pending", None


def _terminated_message(pod: Json) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        done = (status.get("state") or {}).get("terminated") or {}
        if done:
            return str(done.get("message") or f"importer exited with code {done.get('exitCode')}")
    return str((pod.get("status") or {}).get("message") or "the importer pod failed")
