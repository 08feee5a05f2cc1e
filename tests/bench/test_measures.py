"""The pure parts of the benchmarks (bench/measures.py): what density.py and controller_scale.py
print is only as right as these."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import measures


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([3.0], 50, 3.0, id="one-value"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="even-count-median-is-the-middle-mean"),
        pytest.param([5.0, 1.0, 3.0], 50, 3.0, id="unsorted"),
        pytest.param(list(map(float, range(1, 21))), 95, 19.05, id="p95-of-20-interpolates"),
        pytest.param([1.0, 9.0], 100, 9.0, id="p100-is-max"),
        pytest.param([1.0, 9.0], 0, 1.0, id="p0-is-min"),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert measures.percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan_and_a_bad_rank_is_refused() -> None:
    assert math.isnan(measures.percentile([], 50))
    with pytest.raises(ValueError, match="101"):
        measures.percentile([1.0], 101)


def test_summary_of_stuck_vmis_keeps_the_count_and_json_has_no_nan() -> None:
    s = measures.summarize([2.0, 4.0, 6.0])
    assert (s.n, s.p50, s.max) == (3, 4.0, 6.0)
    empty = measures.summarize([])
    assert empty.n == 0
    assert json.loads(json.dumps(empty.as_json())) == {
        "n": 0,
        "p50": None,
        "p95": None,
        "max": None,
    }


def _event(stage: str, verb: str, resource: str, *, user: str, **ref: str) -> str:
    """An audit line as kvd's API server writes it (kvd/local/apiserver/audit.py)."""
    event: dict[str, object] = {
        "kind": "Event",
        "stage": stage,
        "verb": verb,
        "user": {"username": user},
        "userAgent": "kvd/0.1.0",
        "responseStatus": {"code": 200},
    }
    if resource:
        event["objectRef"] = {"resource": resource, **ref}
    return json.dumps(event)


CONTROLLER = "system:serviceaccount:kvd:kvd-controller"
HANDLER = "system:serviceaccount:kvd:kvd-handler"
NODE = "system:node:node-1"


def test_audit_counts_each_finished_request_once_with_its_subresource() -> None:
    lines = [
        _event("ResponseStarted", "watch", "pods", user=NODE),
        _event("ResponseComplete", "watch", "pods", user=NODE),
        _event(
            "ResponseComplete",
            "patch",
            "virtualmachineinstances",
            user=HANDLER,
            subresource="status",
            namespace="default",
            name="a",
        ),
        _event("ResponseComplete", "get", "", user="admin"),  # discovery: no objectRef
        '{"stage":"ResponseComplete","verb":"get"',  # torn last line while the server writes
    ]
    found = measures.parse_audit(lines)
    assert [(r.verb, r.resource) for r in found] == [
        ("watch", "pods"),
        ("patch", "virtualmachineinstances/status"),
    ]
    assert found[1].name == "a"
    assert found[1].namespace == "default"


@pytest.mark.parametrize(
    ("user", "agent", "expected"),
    [
        pytest.param(CONTROLLER, "kvd-controller/0.1.0", "controller", id="controller"),
        pytest.param(HANDLER, "kvd-handler/0.1.0", "handler", id="handler"),
        pytest.param(NODE, "kvd-node", "node", id="node"),
        pytest.param("kvd-admin", "kvd-bench-density/0.1.0", "bench", id="bench-by-agent"),
        pytest.param("kvd-admin", "kubectl/v1.37", "kvd-admin", id="a-user-as-is"),
    ],
)
def test_component(user: str, agent: str, expected: str) -> None:
    assert measures.component(user, agent) == expected


def test_writes_per_start_leave_out_the_needed_creates_heartbeats_and_count_409s() -> None:
    n = 2
    counts: measures.Tally = measures.tally(
        [
            measures.Request(
                "admin",
                "kvd-bench-density",
                "create",
                "virtualmachineinstances",
                201,
                "default",
                "a",
            ),
            measures.Request(
                "admin",
                "kvd-bench-density",
                "create",
                "virtualmachineinstances",
                201,
                "default",
                "b",
            ),
            *[measures.Request(CONTROLLER, "", "create", "pods", 201, "default", "")] * 2,
            *[
                measures.Request(
                    CONTROLLER, "", "patch", "virtualmachineinstances/status", 200, "default", ""
                )
            ]
            * 4,
            *[
                measures.Request(
                    HANDLER, "", "update", "virtualmachineinstances", 200, "default", ""
                )
            ]
            * 2,
            measures.Request(HANDLER, "", "update", "virtualmachineinstances", 409, "default", ""),
            *[measures.Request(CONTROLLER, "", "create", "events", 201, "default", "")] * 6,
            *[measures.Request(NODE, "", "update", "leases", 200, "kube-node-lease", "")] * 9,
            *[measures.Request(NODE, "", "patch", "nodes/status", 200, "", "node-1")] * 3,
            measures.Request(NODE, "", "get", "pods", 200, "default", ""),
        ]
    )
    report = measures.writes_per_start(counts, n)
    assert report.patches == 2.0
    assert report.updates_creates == 1.0
    assert report.events == 3.0
    assert report.conflicts == {"handler update virtualmachineinstances": 1}
    assert report.by_component == {
        "controller": {"create events": 3.0, "patch virtualmachineinstances/status": 2.0},
        "handler": {"update virtualmachineinstances": 1.0},
    }
    with pytest.raises(ValueError, match="at least one VMI"):
        measures.writes_per_start(counts, 0)


SMAPS = """\
55d1c0a00000-7ffd8f9fe000 ---p 00000000 00:00 0                          [rollup]
Rss:               30724 kB
Pss:               12345 kB
Pss_Anon:           8000 kB
Shared_Clean:      17000 kB
Shared_Dirty:          0 kB
Private_Clean:      1200 kB
Private_Dirty:      8800 kB
Referenced:        30724 kB
Anonymous:          8800 kB
"""


def test_smaps_rollup_gives_rss_pss_and_private_pages() -> None:
    assert measures.smaps_rollup(SMAPS) == measures.Memory(rss=30724, pss=12345, uss=10000)
    with pytest.raises(ValueError, match="Pss"):
        measures.smaps_rollup("nothing here\n")


def test_cpu_ticks_count_after_a_command_name_with_spaces_and_parentheses() -> None:
    fields = ["S", *["0"] * 10, "150", "50", "7", "3", *["0"] * 30]
    stat = "4242 (evil) (name) " + " ".join(fields)
    assert measures.cpu_ticks(stat) == 200
    assert measures.cpu_ticks(stat, children=True) == 210
    with pytest.raises(ValueError, match="stat"):
        measures.cpu_ticks("4242 (short) S 1 2")


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        pytest.param(
            ["/usr/bin/qemu-system-x86_64", "-name", "guest=default_a"], "qemu", id="qemu"
        ),
        pytest.param(["/usr/sbin/libvirtd", "-f", "x.conf"], "libvirtd", id="libvirtd"),
        pytest.param(["/usr/sbin/virtlogd", "-d"], "virtlogd", id="virtlogd"),
        pytest.param(["tail", "-n", "+1", "-F", "/x/console.log"], "console-log", id="tail"),
        pytest.param(["/bin/sh", "-c", "script", "kvd-shim", "/data/pods/x"], "shim", id="shim"),
        pytest.param(
            ["/bin/busybox", "sh", "-c", "s", "kvd-shim", "/d"], "shim", id="busybox-shim"
        ),
        pytest.param(
            ["/w/.venv/bin/python3", "/w/.venv/bin/kvd", "launcher", "--name", "a"],
            "launcher",
            id="launcher-by-interpreter",
        ),
        pytest.param(["kvd", "launcher"], "launcher", id="launcher"),
        pytest.param(["/usr/sbin/dnsmasq"], "dnsmasq", id="other-by-program"),
        pytest.param(["/bin/busybox", "udhcpd", "-f", "x.conf"], "udhcpd", id="busybox-applet"),
        pytest.param([], "other", id="no-argv"),
        pytest.param(
            ["/x/.venv/bin/python3", "/x/.venv/bin/kvd", "controller", "--namespace=kvd-system"],
            "controller",
            id="the-charts-controller-pod",
        ),
        pytest.param(["/x/python3", "/x/kvd", "handler", "--node=n"], "handler", id="handler"),
    ],
)
def test_process_kind(argv: list[str], kind: str) -> None:
    assert measures.process_kind(argv) == kind


def test_table_aligns_columns_and_refuses_a_short_row() -> None:
    out = measures.table(("stage", "P50"), [("Running", 1.234), ("booted", None), ("x", math.nan)])
    assert out.splitlines() == [
        "stage     P50",
        "-------  ----",
        "Running  1.23",
        "booted      -",
        "x           -",
    ]
    with pytest.raises(ValueError, match="1 cells"):
        measures.table(("a", "b"), [("only",)])


def test_per_kind_sums_processes_of_one_pod() -> None:
    found = measures.per_kind([("p1", "shim", 1.0), ("p1", "shim", 2.0), ("p2", "qemu", 5.0)])
    assert found == {"shim": {"p1": 3.0}, "qemu": {"p2": 5.0}}
    assert measures.mean(found["shim"]) == 3.0
    assert math.isnan(measures.mean({}))


def test_deep_size_counts_containers_and_leaves_once() -> None:
    import sys  # noqa: PLC0415

    leaf = "x" * 1000
    shared = [leaf, leaf]
    assert measures.deep_size(shared) == sys.getsizeof(shared) + sys.getsizeof(leaf)
    nested = {"a": {"b": [1]}}
    assert measures.deep_size(nested) > measures.deep_size({"a": {}})


def test_last_lines_of_a_console_log(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"SeaBIOS\r\n\r\nBooting from Hard Disk...\r\n\xff[    0.0] Linux\r\n  \r\n")
    assert measures.last_lines(log, 2) == ["Booting from Hard Disk...", "\ufffd[    0.0] Linux"]
    log.write_bytes(b"\r\n")
    assert measures.last_lines(log) == ["(console.log is empty)"]
    assert measures.last_lines(tmp_path / "gone.log") == ["(gone.log: No such file or directory)"]
