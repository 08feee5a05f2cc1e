"""Leader election on a coordination.k8s.io/v1 Lease, built on the official client's
`kubernetes.leaderelection`.

Upstream does the protocol: read the Lease; create it, or take it over once its holder has not
renewed it for the lease duration; renew every retry period; give up when no renewal succeeded
within the renew deadline. The replace carries the Lease's resourceVersion, so of two candidates
racing for it exactly one wins. What this module adds, each where upstream falls short:

- `LeaseLock` talks through the default ApiClient (`client.CoordinationV1Api()`); ours is put
  in its place.
- `Config` calls `sys.exit` on bad values and rejects periods under a second; `_Config` raises
  ValueError instead and accepts them (tests use short periods).
- The lease duration goes into the record as `str(duration)` and back out as `int(...)`, so a
  float crashes the lock; it is rounded up to whole seconds, the unit of `leaseDurationSeconds`.
- An error other than ApiException (connection refused, timeout) escapes `try_acquire_or_renew`,
  ends the election and, while leading, skips `onstopped_leading`; here it is one failed attempt.
- A missing namespace fails every create with 404, logged at INFO only; here a warning, once.
- `run()` blocks while following and has no stop: it runs in a daemon thread that `stop()` ends.
- The lock's requests carry no timeout, and the renew deadline is only checked between attempts:
  a leader whose server stops answering would hang in a request, still leading, while another
  candidate takes the expired lease. Requests time out here, and a watchdog gives up leadership
  once no renewal has succeeded for `renew_seconds`, whatever the election thread is doing.

As in KubeVirt's virt-controller, a candidate that lost the lease does not campaign again: the
process is expected to exit from `on_stopped`. A leader that stops on purpose (SIGTERM: a rolled
or deleted pod) calls `release()` once its work has stopped, as client-go's ReleaseOnCancel:
the Lease gets no holder and a one-second duration, so a standby takes over at its next attempt
instead of after the lease duration.
"""

from __future__ import annotations

import datetime
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes.leaderelection.resourcelock import leaselock

from kvd import logs

log = logs.get_logger(__name__)

# Upstream logs every attempt at INFO (each follower says "yet to finish lease_duration" every
# retry period); the transitions that matter are logged here, structured.
logging.getLogger("leaderelection").setLevel(logging.WARNING)

JITTER = 1.2  # client-go's JitterFactor: candidates started together spread their attempts


class _CoordinationApi(k8s.CoordinationV1Api):
    """The calls LeaseLock makes, each bounded by a timeout."""

    def __init__(self, api: k8s.ApiClient, *, timeout: float) -> None:
        super().__init__(api)
        self._timeout = timeout

    def read_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        return super().read_namespaced_lease(*args, **kwargs)

    def create_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        return super().create_namespaced_lease(*args, **kwargs)

    def replace_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        return super().replace_namespaced_lease(*args, **kwargs)


class _Lock(leaselock.LeaseLock):
    def __init__(
        self, api: k8s.ApiClient, *, namespace: str, name: str, identity: str, timeout: float
    ) -> None:
        super().__init__(name, namespace, identity)
        self.api_instance = _CoordinationApi(api, timeout=timeout)
        self._warned_missing = False

    def create(self, name: str, namespace: str, election_record: LeaderElectionRecord) -> bool:
        # Upstream's create, but telling a missing namespace (404) from a lost race (409).
        body = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=name), spec=self.get_lease_spec(election_record)
        )
        try:
            self.lease_reference = self.api_instance.create_namespaced_lease(namespace, body)
        except ApiException as exc:
            if exc.status == 404 and not self._warned_missing:
                self._warned_missing = True
                log.warning("lease_namespace_missing", lease=f"{namespace}/{name}")
            return False
        return True


class _Config(electionconfig.Config):
    def __init__(
        self,
        lock: _Lock,
        *,
        lease_seconds: float,
        renew_seconds: float,
        retry_seconds: float,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
    ) -> None:
        # Not calling super().__init__: all it adds is the validation `_validate` replaces.
        self.jitter_factor = JITTER
        self.lock = lock
        self.lease_duration = math.ceil(lease_seconds)
        self.renew_deadline = renew_seconds
        self.retry_period = retry_seconds
        self.onstarted_leading = on_started
        self.onstopped_leading = on_stopped


def _validate(lease_seconds: float, renew_seconds: float, retry_seconds: float) -> None:
    if retry_seconds <= 0:
        raise ValueError(f"retry_seconds must be positive, not {retry_seconds}")
    if renew_seconds <= JITTER * retry_seconds:
        raise ValueError(
            f"renew_seconds ({renew_seconds}) must exceed "
            f"{JITTER} x retry_seconds ({retry_seconds})"
        )
    if lease_seconds <= renew_seconds:
        raise ValueError(
            f"lease_seconds ({lease_seconds}) must exceed renew_seconds ({renew_seconds})"
        )


class _Election(leaderelection.LeaderElection):
    def __init__(self, config: _Config, *, stop: threading.Event) -> None:
        super().__init__(config)
        self._stop = stop
        self._unreachable = False
        self.renewed_at = 0.0  # time.monotonic() of the last acquire or renewal that succeeded

    def acquire(self) -> bool:
        # Upstream's loop, ending on stop() and jittered as client-go's JitterUntil.
        retry = self.election_config.retry_period
        while not self._stop.is_set():
            if self.try_acquire_or_renew():
                return True
            self._stop.wait(retry * random.uniform(1.0, JITTER))
        return False

    def try_acquire_or_renew(self) -> bool:
        if self._stop.is_set():
            return False
        lock = self.election_config.lock
        try:
            ok = bool(super().try_acquire_or_renew())
        except Exception as exc:
            if not self._unreachable:
                self._unreachable = True
                log.warning(
                    "lease_unreachable", lease=f"{lock.namespace}/{lock.name}", error=str(exc)
                )
            return False
        if self._unreachable:
            self._unreachable = False
            log.info("lease_reachable", lease=f"{lock.namespace}/{lock.name}")
        if ok:
            self.renewed_at = time.monotonic()
        return ok


class LeaderElector:
    """One candidate for the Lease `namespace/name`.

    `on_started` runs in its own thread once the lease is acquired (renewing goes on meanwhile; if
    it raises, leadership is given up). `on_stopped` runs once when renewing failed for
    `renew_seconds` (at the latest `retry_seconds / 2` later); the elector then stays a
    non-leader for good. Renewal happens every `retry_seconds`; a follower takes over
    `lease_seconds` after it last saw the Lease change, so `lease_seconds` should exceed
    `renew_seconds + retry_seconds` (the defaults do, as client-go's: 15, 10, 2).
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        lease_seconds: float = 15.0,
        renew_seconds: float = 10.0,
        retry_seconds: float = 2.0,
    ) -> None:
        _validate(lease_seconds, renew_seconds, retry_seconds)
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._renew_seconds = renew_seconds
        self._retry_seconds = retry_seconds
        self._context = {"lease": f"{namespace}/{name}", "identity": identity}
        self._leading = threading.Event()
        self._lost = threading.Event()  # set once, on the first _stopped
        self._state = threading.Lock()
        self._stop = threading.Event()
        lock = _Lock(api, namespace=namespace, name=name, identity=identity, timeout=retry_seconds)
        config = _Config(
            lock,
            lease_seconds=lease_seconds,
            renew_seconds=renew_seconds,
            retry_seconds=retry_seconds,
            on_started=self._started,
            on_stopped=self._stopped,
        )
        self._election = _Election(config, stop=self._stop)
        self._thread = threading.Thread(target=self._run, name=f"leader-{name}", daemon=True)

    def start(self) -> None:
        """Start campaigning in a daemon thread; returns at once."""
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning and renewing, without releasing the Lease (as a crash would: another
        candidate takes over once it expires). If leading, `on_stopped` follows within
        `renew_seconds`. Returns at once."""
        self._stop.set()

    def release(self) -> bool:
        """Stop, and give the Lease up if this candidate holds it (client-go's ReleaseOnCancel:
        no holder, a duration of one second). Call it once the leader's work has stopped, so
        two leaders never act at once. True when the Lease was released."""
        # No join: the election thread cannot renew once stopped, and a renewal already in flight
        # carries the resourceVersion it read, so it cannot overwrite the release either.
        self._stop.set()
        lock = self._election.election_config.lock
        api = lock.api_instance
        try:
            lease = api.read_namespaced_lease(lock.name, lock.namespace)
            if lease.spec is None or lease.spec.holder_identity != lock.identity:
                return False
            now = datetime.datetime.now(datetime.UTC)
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.acquire_time = now
            lease.spec.renew_time = now
            api.replace_namespaced_lease(lock.name, lock.namespace, lease)
        except Exception as exc:  # the API is gone or the Lease moved on: it expires instead
            log.warning("lease_release_failed", error=str(exc), **self._context)
            return False
        log.info("lease_released", **self._context)
        return True

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_leading(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds to become the leader; True if leading."""
        return self._leading.wait(timeout)

    def _run(self) -> None:
        log.info("leader_election_started", **self._context)
        try:
            self._election.run()
        except Exception:  # a bug: every error of the API is a failed attempt
            log.exception("leader_election_failed", **self._context)

    def _started(self) -> None:
        with self._state:
            if self._lost.is_set():  # lost before upstream's thread for this callback ran
                return
            self._leading.set()
        log.info("leader_elected", **self._context)
        threading.Thread(target=self._watch, name=f"{self._thread.name}-watch", daemon=True).start()
        self._on_started()

    def _watch(self) -> None:
        while not self._lost.wait(self._retry_seconds / 2):
            if time.monotonic() - self._election.renewed_at > self._renew_seconds:
                self._stopped()

    def _stopped(self) -> None:
        # Called by the watchdog or by upstream's run(), whichever is first.
        with self._state:
            if self._lost.is_set():
                return
            self._lost.set()
            self._leading.clear()
        if self._stop.is_set():
            log.info("leader_stopped", **self._context)
        else:
            log.warning("leader_lost", **self._context)
        self._stop.set()  # a request that hung and then succeeds must not renew any more
        try:
            self._on_stopped()
        except Exception:
            log.exception("on_stopped_failed", **self._context)
