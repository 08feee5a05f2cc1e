"""The pure parts of the benchmarks: percentiles, the audit log, /proc files, tables.

Kept apart from `density.py` and `controller_scale.py` (which drive a cluster) so they can be
tested without one (tests/bench/). Nothing here talks to a process, a socket or the API.
"""

from __future__ import annotations

import collections
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# Written on their own clock whatever the VMIs do: leader election, node heartbeats.
PERIODIC = frozenset({"leases", "nodes", "nodes/status"})


# --- percentiles -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) of `values`, interpolated linearly between the two closest
    ranks (numpy's default, so P50 of an even count is the mean of the middle two); NaN when
    there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p95: float
    max: float

    def as_json(self) -> dict[str, float | int | None]:
        def finite(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 3)

        return {
            "n": self.n,
            "p50": finite(self.p50),
            "p95": finite(self.p95),
            "max": finite(self.max),
        }


def summarize(values: Iterable[float]) -> Summary:
    found = list(values)
    return Summary(
        n=len(found),
        p50=percentile(found, 50),
        p95=percentile(found, 95),
        max=max(found) if found else math.nan,
    )


# --- the audit log -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One finished request of the API server's audit log (kube's `audit.k8s.io/v1` Event)."""

    user: str
    agent: str
    verb: str
    resource: str  # `pods`, `virtualmachineinstances/status`: subresource after a slash
    code: int
    namespace: str
    name: str


def parse_audit(lines: Iterable[str]) -> list[Request]:
    """The requests of an audit log, one per `ResponseComplete` event (a watch also logs a
    `ResponseStarted` event, not counted twice). Lines that are not such an event (a torn last
    line while the server writes, another stage) are skipped."""
    found = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("stage") != "ResponseComplete":
            continue
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource") or "")
        if not resource:
            continue  # discovery, health: not about a resource
        if ref.get("subresource"):
            resource += "/" + str(ref["subresource"])
        found.append(
            Request(
                user=str((event.get("user") or {}).get("username") or ""),
                agent=str(event.get("userAgent") or ""),
                verb=str(event.get("verb") or ""),
                resource=resource,
                code=int((event.get("responseStatus") or {}).get("code") or 0),
                namespace=str(ref.get("namespace") or ""),
                name=str(ref.get("name") or ""),
            )
        )
    return found


def component(user: str, agent: str) -> str:
    """Who made a request, in the words of kvd's layout: the controller's and handler's
    ServiceAccounts, the node (system:node:…), the benchmark itself (by its User-Agent), or the
    user name as it is."""
    if agent.startswith("kvd-bench"):
        return "bench"
    if user.startswith("system:serviceaccount:"):
        account = user.rsplit(":", 1)[1]
        return account.removeprefix("kvd-")
    if user.startswith("system:node:"):
        return "node"
    return user or "anonymous"


Tally = collections.Counter[tuple[str, str, str, int]]  # (component, verb, resource, code)


def tally(requests: Iterable[Request]) -> Tally:
    counts: Tally = collections.Counter()
    for r in requests:
        counts[(component(r.user, r.agent), r.verb, r.resource, r.code)] += 1
    return counts


@dataclass(frozen=True)
class WriteReport:
    """The writes that starting VMIs took, per VMI, beyond the VMI creates and the launcher pod
    creates every start needs. Lease renewals and node heartbeats run on their own clock and are
    left out (PERIODIC); Events are shown apart (a real cluster writes them too, but a user
    does not wait for them)."""

    vmis: int
    by_component: dict[str, dict[str, float]]  # component → "patch pods/status" → per VMI
    patches: float  # per VMI, beyond the creates, no Events
    updates_creates: float
    events: float
    conflicts: dict[str, int]  # "component verb resource" → 409s (not per VMI)


def writes_per_start(counts: Tally, vmis: int) -> WriteReport:
    if vmis <= 0:
        raise ValueError("writes per start need at least one VMI")
    left: collections.Counter[tuple[str, str, str]] = collections.Counter()
    conflicts: dict[str, int] = {}
    for (who, verb, resource, code), n in counts.items():
        if verb not in WRITES or resource in PERIODIC:
            continue
        if code == 409:
            conflicts[f"{who} {verb} {resource}"] = conflicts.get(f"{who} {verb} {resource}", 0) + n
        if not 200 <= code < 300:
            continue
        left[(who, verb, resource)] += n
    # The ones every start needs: the user's VMI, the controller's pod.
    for needed in (
        ("bench", "create", "virtualmachineinstances"),
        ("controller", "create", "pods"),
    ):
        left[needed] = max(0, left[needed] - vmis)
    by_component: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for (who, verb, resource), n in sorted(left.items()):
        if n:
            by_component[who][f"{verb} {resource}"] = n / vmis
    events = sum(n for (_, _, res), n in left.items() if res == "events")
    patches = sum(n for (_, verb, res), n in left.items() if verb == "patch" and res != "events")
    others = sum(
        n
        for (who, verb, res), n in left.items()
        if verb in ("update", "create") and res != "events" and who != "bench"
    )
    return WriteReport(
        vmis=vmis,
        by_component=dict(by_component),
        patches=patches / vmis,
        updates_creates=others / vmis,
        events=events / vmis,
        conflicts=conflicts,
    )


# --- /proc -------------------------------------------------------------------------------------


class Memory(NamedTuple):
    """KiB of one process from `/proc/PID/smaps_rollup`: resident (shared pages counted in full,
    as `ps` shows and KubeVirt's overhead figures use), proportional (each shared page divided
    among the processes that map it) and unique (its private pages alone: what one more such
    process costs once the shared pages are in)."""

    rss: int
    pss: int
    uss: int


def smaps_rollup(text: str) -> Memory:
    fields: dict[str, int] = {}
    for line in text.splitlines()[1:]:  # the first line names the address range
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key.strip()] = int(parts[0])
    if "Pss" not in fields:
        raise ValueError("not an smaps_rollup: no Pss line")
    return Memory(
        rss=fields.get("Rss", 0),
        pss=fields["Pss"],
        uss=fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    )


def cpu_ticks(stat: str, *, children: bool = False) -> int:
    """utime + stime of `/proc/PID/stat` (all its threads), in clock ticks; with `children`,
    also the CPU of the children it has waited for (cutime + cstime). The command name (field 2)
    may hold spaces and parentheses: fields are counted after its last `)`."""
    after = stat.rpartition(")")[2].split()
    if len(after) < 15:
        raise ValueError(f"not a /proc/PID/stat line: {stat[:80]!r}")
    # after[0] is field 3 (state); utime, stime, cutime, cstime are fields 14 to 17
    ticks = int(after[11]) + int(after[12])
    return ticks + int(after[13]) + int(after[14]) if children else ticks


DAEMONS = ("controller", "handler")  # kvd's own pods (kvd-system), not launchers


def process_kind(cmdline: Sequence[str]) -> str:
    """What a process of a launcher pod, or of a kvd daemon's pod, is, from its argv."""
    if not cmdline:
        return "other"
    program = cmdline[0].rsplit("/", 1)[-1]
    if "kvd-shim" in cmdline[:6]:  # `sh -c SCRIPT kvd-shim DIR`, sh maybe `busybox sh`
        return "shim"
    if program == "busybox" and len(cmdline) > 1 and cmdline[1] != "sh":
        return cmdline[1]  # an applet: the launcher's DHCP server is `busybox udhcpd`
    if program.startswith("qemu-system"):
        return "qemu"
    if program in ("libvirtd", "virtqemud"):
        return "libvirtd"
    if program in ("virtlogd", "virtlockd"):
        return program
    if program == "tail" or (program == "sh" and any("tail " in a for a in cmdline[1:])):
        return "console-log"
    if "launcher" in cmdline[1:3]:  # `kvd launcher …` or `python …/kvd launcher …`
        return "launcher"
    for daemon in DAEMONS:  # the chart's pods run `kvd controller|handler …` the same way
        if daemon in cmdline[1:3]:
            return daemon
    return program


def deep_size(obj: object) -> int:
    """Bytes a decoded JSON value takes in this Python: every dict, list and str counted once
    (`sys.getsizeof`, objects shared between two places once). What an informer's cache pays
    for one object it keeps as JSON."""
    seen: set[int] = set()
    total = 0
    todo = [obj]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            todo.extend(item)
    return total


# --- tables ------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned; floats with
    two decimals, None as `-`."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.2f}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row {row} has {len(row)} cells, the table {len(headers)} columns")
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *map(line, body)])


def per_kind(samples: Iterable[tuple[str, str, float]]) -> dict[str, dict[str, float]]:
    """{kind: {pod: value summed}} from (pod, kind, value) samples."""
    out: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for pod, kind, value in samples:
        out[kind][pod] = out[kind].get(pod, 0.0) + value
    return dict(out)


def mean(values: Mapping[str, float]) -> float:
    return sum(values.values()) / len(values) if values else math.nan


def last_lines(path: Path, n: int = 3) -> list[str]:
    """The last `n` non-blank lines of a log, stripped; what went wrong when there are none."""
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError as exc:
        return [f"({path.name}: {exc.strerror})"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-n:] or [f"({path.name} is empty)"]
