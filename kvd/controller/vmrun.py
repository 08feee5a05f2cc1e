"""What a VirtualMachine's run strategy asks for, as a pure table: (run strategy, the VM's
status, its VMI) → start a VMI, stop (delete) it, or leave it. KubeVirt's `syncRunStrategy`
(pkg/virt-controller/watch/vm/vm.go), rule for rule:

- Always: a VMI that ended, or that a Stop request names, is deleted; with no VMI, one is
  started (after the start back-off).
- RerunOnFailure: a VMI that ended, or that a Stop request names, is deleted; one that Failed
  also gets a Start request, so a new one is started (after the back-off). With no VMI, one is
  started only on a Start request, or when the VM comes from another strategy
  (`status.runStrategy` differs): a guest that powered itself off stays off.
- Manual: only requests act: Start with no VMI starts one, Stop deletes the VMI it names.
- Halted: any VMI is deleted. A Start request turns the VM to Always (KubeVirt's "start
  paused" path; kvd's own start sets the strategy directly).
- Once: with no VMI, one is started; the VMI it ran is kept once it ends, so never again.

`running: true` is Always, `running: false` Halted. The start back-off (KubeVirt's
CrashLoopBackOff) is here too: each VMI that ends before it ever ran adds a failure, and the
next start waits `start_backoff(failures)` seconds: 10 s times failures squared, plus up to half
of that again at random (so failing VMs spread out), capped at 300 s. A VMI that runs, or a strategy
that does not restart by itself, clears it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from kvd import timestamps
from kvd.api import phases

Json = dict[str, Any]

ALWAYS, RERUN, MANUAL, HALTED, ONCE = "Always", "RerunOnFailure", "Manual", "Halted", "Once"
STRATEGIES: Final = (ALWAYS, RERUN, MANUAL, HALTED, ONCE)
RESTARTING: Final = frozenset({ALWAYS, RERUN, ONCE})  # those a start failure counts for
START, STOP = "Start", "Stop"
MAX_BACKOFF: Final = 300  # KubeVirt's defaultMaxCrashLoopBackoffDelaySeconds
MIN_INTERVAL: Final = 10


class InvalidRunStrategy(Exception):
    """The spec names no strategy kvd can act on; the message says why."""


@dataclass(frozen=True, kw_only=True)
class VMI:
    """What the table needs of the VM's VMI."""

    uid: str
    phase: str = ""
    deleting: bool = False
    ran: bool = False  # it reached Running at some point (phaseTransitionTimestamps)

    @property
    def final(self) -> bool:
        return phases.is_final(self.phase)


@dataclass(frozen=True, kw_only=True)
class Action:
    start: bool = False
    stop: bool = False  # delete the VMI
    request_start: bool = False  # append a Start request first (RerunOnFailure, VMI Failed)
    set_running: bool = False  # Halted with a Start request: the spec says run (Always)
    again: float | None = None  # look again (the start back-off has this long to go)
    why: str = ""


def run_strategy(spec: Json) -> str:
    """The VM's run strategy, `running` mapped as KubeVirt maps it."""
    running, strategy = spec.get("running"), spec.get("runStrategy")
    if running is not None and strategy is not None:
        raise InvalidRunStrategy("running and runStrategy are mutually exclusive")
    if running is not None:
        return ALWAYS if running is True else HALTED
    if strategy is None:
        return HALTED
    if strategy not in STRATEGIES:
        raise InvalidRunStrategy(f"unknown runStrategy {strategy!r}")
    return str(strategy)


def view(vmi: Json | None) -> VMI | None:
    if vmi is None:
        return None
    meta, status = vmi["metadata"], vmi.get("status") or {}
    ran = any(
        t.get("phase") == phases.RUNNING for t in status.get("phaseTransitionTimestamps") or []
    )
    return VMI(
        uid=str(meta["uid"]),
        phase=str(status.get("phase") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        ran=ran or status.get("phase") == phases.RUNNING,
    )


def decide(strategy: str, status: Json, vmi: VMI | None, *, now: datetime) -> Action:
    """What `strategy` asks for, given the VM's `status` and its `vmi` (None: it has none)."""
    if strategy == ALWAYS:
        if vmi is not None:
            if stop_requested(status, vmi) or vmi.final:
                return Action(stop=True, why="restart" if vmi.final else "stop request")
            return Action()
        return _start(status, now, "runStrategy Always")
    if strategy == RERUN:
        if vmi is not None:
            failed, stop = vmi.phase == phases.FAILED, stop_requested(status, vmi)
            if not vmi.deleting and (stop or vmi.final):
                request = failed and not any_start_request(status)
                why = f"VMI {vmi.phase}" if vmi.final else "stop request"
                return Action(stop=True, request_start=request, why=why)
            return Action()
        if not start_requested(status) and status.get("runStrategy") == RERUN:
            return Action()  # it ended by itself (or was stopped): it stays off
        return _start(status, now, "runStrategy RerunOnFailure")
    if strategy == MANUAL:
        if vmi is not None:
            stop = stop_requested(status, vmi)
            return Action(stop=True, why="stop request") if stop else Action()
        return Action(start=True, why="start request") if start_requested(status) else Action()
    if strategy == HALTED:
        if vmi is not None:
            return Action(stop=True, why="runStrategy Halted")
        return Action(set_running=True) if start_requested(status) else Action()
    if strategy == ONCE:
        return Action(start=True, why="runStrategy Once") if vmi is None else Action()
    raise InvalidRunStrategy(f"unknown runStrategy {strategy!r}")


def _start(status: Json, now: datetime, why: str) -> Action:
    left = backoff_left(status, now)
    if left > 0:
        return Action(again=left, why="start back-off")
    return Action(start=True, why=why)


# --- state change requests --------------------------------------------------------------------


def _first(status: Json) -> Json | None:
    requests = status.get("stateChangeRequests") or []
    return requests[0] if requests else None


def start_requested(status: Json) -> bool:
    first = _first(status)
    return first is not None and first.get("action") == START


def any_start_request(status: Json) -> bool:
    return any(r.get("action") == START for r in status.get("stateChangeRequests") or [])


def stop_requested(status: Json, vmi: VMI) -> bool:
    """Whether the first request asks to stop exactly this VMI."""
    first = _first(status)
    return first is not None and first.get("action") == STOP and first.get("uid") == vmi.uid


def done_with_first_request(status: Json, vmi: VMI | None) -> bool:
    """Whether the first request has had its effect (or never can), so it is dropped:
    a Stop once its VMI is gone (or it names none), a Start once a live VMI exists."""
    first = _first(status)
    if first is None:
        return False
    if first.get("action") == STOP:
        return vmi is None or not first.get("uid") or first.get("uid") != vmi.uid
    if first.get("action") == START:
        return vmi is not None and not vmi.deleting and not vmi.final
    return True  # an action kvd does not know can never be acted on


# --- the start back-off -----------------------------------------------------------------------


def start_backoff(failures: int, *, jitter: float, max_delay: int = MAX_BACKOFF) -> int:
    """Seconds to wait before the next start after `failures` VMIs in a row failed to start;
    `jitter` in [0, 1) picks the random part (KubeVirt's calculateStartBackoffTime)."""
    interval = max(max_delay // 30, MIN_INTERVAL)
    delay = interval * max(failures, 1) ** 2
    delay += math.floor(jitter * (delay // 2 + 1))
    return min(delay, max_delay)


def backoff_left(status: Json, now: datetime) -> float:
    """Seconds until the start back-off allows a start (0: it does)."""
    failure = status.get("startFailure") or {}
    retry = timestamps.parse(str(failure.get("retryAfterTimestamp") or ""))
    if retry is None:
        return 0.0
    return max(0.0, (retry - now).total_seconds())


def start_failure(
    strategy: str, status: Json, vmi: VMI | None, *, now: datetime, jitter: float
) -> Json | None:
    """`status.startFailure` after seeing `vmi` (KubeVirt's syncStartFailureStatus)."""
    current: Json | None = status.get("startFailure") or None
    if (vmi is not None and vmi.ran) or strategy not in RESTARTING:
        return None
    if vmi is None or not vmi.final:
        return current
    if current is not None and current.get("lastFailedVMIUID") == vmi.uid:
        return current  # counted already
    count = int((current or {}).get("consecutiveFailCount") or 0) + 1
    delay = start_backoff(count, jitter=jitter)
    return {
        "consecutiveFailCount": count,
        "lastFailedVMIUID": vmi.uid,
        "retryAfterTimestamp": format_time(now + timedelta(seconds=delay)),
    }


def format_time(when: datetime) -> str:
    """`when` as the API writes times (RFC 3339, UTC, to the second)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
