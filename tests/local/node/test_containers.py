"""kvd.local.node.containers: real processes in real namespaces and cgroups, on a real bridge.

Each test run gets its own bridge, CIDR and cgroup parent; every pod is removed and detached
afterwards and the module checks that no cgroup, netns, veth or process is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvd import sandbox
from kvd.local.node import containers, network, proc
from kvd.local.node.proc import ProcessId
from tests.local.node.test_network import free_cidr, links, netns_list, unique_bridge
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.integration,  # starts real containers: process trees in their own namespaces
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
]

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPO = Path(__file__).resolve().parents[3]

Pod = tuple[str, network.PodNetwork]


def sh(script: str, **kwargs: object) -> containers.ContainerSpec:
    params: dict[str, object] = {"name": "c", "env": {"PATH": PATH}, **kwargs}
    return containers.ContainerSpec(argv=("/bin/sh", "-c", script), **params)  # type: ignore[arg-type]


def finished(rt: containers.Containers, uid: str, name: str = "c") -> containers.ContainerStatus:
    def done() -> bool:
        s = rt.status(uid, name)
        return s is not None and not s.running

    wait_for(f"container {name} of {uid} to finish", done, timeout=10, interval=0.01)
    status = rt.status(uid, name)
    assert status is not None
    return status


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[network.Network]:
    config = network.NetworkConfig(bridge=unique_bridge(), cidr=free_cidr())
    n = network.Network(config, tmp_path_factory.mktemp("net"))
    n.ensure_bridge()
    yield n
    leftovers = n.attached()
    for uid in leftovers:
        n.detach(uid)
    n.remove_bridge()
    assert leftovers == []
    assert config.bridge not in links()
    assert f"{config.bridge}_" not in netns_list()


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    name = f"kvd-test-{uuid.uuid4().hex[:12]}"
    yield name
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        assert not (hierarchy / name).exists(), f"cgroup {hierarchy / name} left behind"


@pytest.fixture
def rt(tmp_path: Path, cgroup_parent: str) -> Iterator[containers.Containers]:
    runtime = containers.Containers(tmp_path / "pods", cgroup_parent=cgroup_parent)
    yield runtime
    for uid in runtime.pods():
        runtime.remove(uid)
    assert runtime.pods() == []


@pytest.fixture
def pod(net: network.Network, rt: containers.Containers) -> Iterator[Callable[[], Pod]]:
    made: list[str] = []

    def make() -> Pod:
        uid = str(uuid.uuid4())
        made.append(uid)
        return uid, net.attach(uid)

    yield make
    for uid in made:
        rt.remove(uid)
        net.detach(uid)


def start(
    rt: containers.Containers, p: Pod, spec: containers.ContainerSpec, attempt: int = 0
) -> containers.ContainerStatus:
    uid, pn = p
    return rt.start(
        uid, spec, netns_path=pn.netns_path, resolv_conf=pn.resolv_conf, attempt=attempt
    )


@pytest.mark.parametrize("code", [0, 3])
def test_the_exit_code_and_the_output_come_back(
    rt: containers.Containers, pod: Callable[[], Pod], code: int
) -> None:
    p = pod()
    started = start(rt, p, sh(f"echo out; echo err >&2; exit {code}"))
    assert started.attempt == 0
    status = finished(rt, p[0])
    assert (status.exit_code, status.signal, status.reason) == (code, None, None)
    assert status.finished_at is not None and status.finished_at >= status.started_at
    assert rt.log_path(p[0], "c", 0).read_text() == "out\nerr\n"
    assert rt.attempts(p[0], "c") == [0]


def test_env_is_exactly_the_spec_and_the_working_dir_is_set(
    rt: containers.Containers, pod: Callable[[], Pod], tmp_path: Path
) -> None:
    p = pod()
    env = {"A": "1", "B": "two words", "HOSTNAME": "pod-a"}
    start(rt, p, containers.ContainerSpec(name="env", argv=("/usr/bin/env",), env=env))
    start(rt, p, containers.ContainerSpec(
        name="pwd", argv=("/bin/pwd",), env={}, working_dir=Path("/data"),
        mounts=(containers.Mount(path=Path("/data"), source=tmp_path),),
    ))  # fmt: skip
    assert finished(rt, p[0], "env").exit_code == 0
    assert finished(rt, p[0], "pwd").exit_code == 0
    assert sorted(rt.log_path(p[0], "env", 0).read_text().splitlines()) == [
        "A=1", "B=two words", "HOSTNAME=pod-a",
    ]  # fmt: skip
    assert rt.log_path(p[0], "pwd", 0).read_text() == "/data\n"


GLIBC_RESERVED = (1 << 31) | (1 << 32)  # bit n-1 is signal n


def test_signals_are_not_left_ignored_for_the_program(
    rt: containers.Containers, pod: Callable[[], Pod]
) -> None:
    p = pod()
    start(rt, p, sh("grep SigIgn /proc/self/status"))
    assert finished(rt, p[0]).exit_code == 0
    label, mask = rt.log_path(p[0], "c", 0).read_text().split()
    # Signals 32 and 33 are glibc's own (no libc call can reset them, and glibc installs its
    # handlers for them anyway); GNU make leaves them ignored for everything it runs.
    assert (label, int(mask, 16) & ~GLIBC_RESERVED) == ("SigIgn:", 0)


def test_volumes_appear_at_their_paths(
    rt: containers.Containers, pod: Callable[[], Pod], tmp_path: Path
) -> None:
    # Sources under /tmp, which the container gets as a fresh tmpfs: they still show through.
    p = pod()
    shared = rt.volume_dir(p[0], "shared")
    host = tmp_path / "host"
    host.mkdir()
    (host / "hello").write_text("from the host\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    config = tmp_path / "app.conf"
    config.write_text("key=value\n")
    device = next(
        Path(f"/dev/loop{i}") for i in range(8) if Path(f"/dev/loop{i}").is_block_device()
    )
    empty_dir = containers.Mount(path=Path("/data/shared"), source=shared)
    start(rt, p, sh("echo from-a > /data/shared/a", name="a", mounts=(empty_dir,)))
    assert finished(rt, p[0], "a").exit_code == 0
    mounts = (
        empty_dir,
        containers.Mount(path=Path("/host"), source=host),
        containers.Mount(path=Path("/ro"), source=ro, read_only=True),
        containers.Mount(path=Path("/run/config/app.conf"), source=config, read_only=True),
        containers.Mount(path=Path("/run/disks/pvc"), source=device, read_only=True),
    )
    script = (
        "cat /data/shared/a /host/hello /run/config/app.conf; "
        "if touch /ro/x 2>/dev/null; then echo ro-writable; fi; "
        "test -b /run/disks/pvc && echo block; echo b > /host/from-b"
    )
    start(rt, p, sh(script, name="b", mounts=mounts))
    assert finished(rt, p[0], "b").exit_code == 0
    assert rt.log_path(p[0], "b", 0).read_text() == "from-a\nfrom the host\nkey=value\nblock\n"
    assert (host / "from-b").read_text() == "b\n"
    assert list(ro.iterdir()) == []


def test_two_pods_never_see_each_others_libvirt_files(
    rt: containers.Containers, pod: Callable[[], Pod], tmp_path: Path
) -> None:
    before = sorted(os.listdir("/run/libvirt")) if Path("/run/libvirt").exists() else None
    sync = containers.Mount(path=Path("/sync"), source=tmp_path)
    script = (
        'echo "$ME" > /var/run/libvirt/"$ME"; echo > /sync/"$ME"; '
        "while [ ! -e /sync/go ]; do sleep 0.01; done; ls /var/run/libvirt /run/libvirt"
    )
    pods = {me: pod() for me in ("p", "q")}
    for me, p in pods.items():
        start(rt, p, sh(script, env={"PATH": PATH, "ME": me}, mounts=(sync,)))
    # Both files exist at once before either lists its directory.
    wait_for("both writes", lambda: (tmp_path / "p").exists() and (tmp_path / "q").exists())
    (tmp_path / "go").write_text("")
    for me, p in pods.items():
        assert finished(rt, p[0]).exit_code == 0
        assert rt.log_path(p[0], "c", 0).read_text().split() == [
            "/run/libvirt:", me, "/var/run/libvirt:", me,  # ls sorts its operands
        ]  # fmt: skip
    assert (sorted(os.listdir("/run/libvirt")) if Path("/run/libvirt").exists() else None) == before


def test_the_container_is_in_the_pods_network_and_can_be_entered(
    rt: containers.Containers, pod: Callable[[], Pod]
) -> None:
    p = pod()
    uid, pn = p
    start(rt, p, sh("ip -o addr show dev eth0; ls /sys/class/net; echo end; exec sleep 300"))
    pid = rt.main_pid(uid, "c")
    assert pid is not None
    wait_for("its output", lambda: rt.log_path(uid, "c", 0).read_text().endswith("end\n"))
    log = rt.log_path(uid, "c", 0).read_text()
    assert f"inet {pn.ip}/{pn.prefix}" in log
    assert log.split()[-3:] == ["eth0", "lo", "end"]  # a sysfs of the pod's netns, not the host's
    inside = "ip -o addr show dev eth0; cat /etc/resolv.conf"
    entered = subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-n", "sh", "-c", inside],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    assert f"inet {pn.ip}/" in entered
    assert entered.endswith(pn.resolv_conf.read_text())


@pytest.mark.parametrize("via", ["terminate", "shim"])
def test_sigterm_reaches_the_program(
    rt: containers.Containers, pod: Callable[[], Pod], tmp_path: Path, via: str
) -> None:
    # "shim": the shim forwards the signal, then waits on for the program's own exit status.
    p = pod()
    script = (
        "trap 'echo term > /vol/marker; exit 0' TERM; echo > /vol/up; while :; do sleep 0.02; done"
    )
    start(rt, p, sh(script, mounts=(containers.Mount(path=Path("/vol"), source=tmp_path),)))
    wait_for("the trap to be set", (tmp_path / "up").exists, interval=0.01)
    if via == "terminate":
        rt.terminate(p[0], "c")
    else:
        record = json.loads((rt.log_path(p[0], "c", 0).parent / "record.json").read_text())
        assert ProcessId(*record["shim"]).signal(signal.SIGTERM)
    status = finished(rt, p[0])
    assert (status.exit_code, status.signal) == (0, None)
    assert (tmp_path / "marker").read_text() == "term\n"


@pytest.mark.parametrize("with_cgroups", [True, False], ids=["cgroup", "mount-namespace"])
def test_kill_gets_a_grandchild_that_left_the_session(
    pod: Callable[[], Pod], tmp_path: Path, cgroup_parent: str, with_cgroups: bool
) -> None:
    rt = containers.Containers(
        tmp_path / "pods", cgroup_parent=cgroup_parent if with_cgroups else None
    )
    p = pod()
    script = "setsid sh -c 'echo $$ > /vol/gc; exec sleep 300' & exec sleep 300"
    try:
        start(rt, p, sh(script, mounts=(containers.Mount(path=Path("/vol"), source=tmp_path),)))
        wait_for("gc", lambda: (tmp_path / "gc").exists() and (tmp_path / "gc").read_text() != "")
        grandchild = ProcessId.of(int((tmp_path / "gc").read_text()))
        assert grandchild is not None and grandchild.alive()
        assert os.getsid(grandchild.pid) != os.getsid(rt.main_pid(p[0], "c") or 0)
        rt.kill(p[0])
        assert not grandchild.alive()
        status = rt.status(p[0], "c")
        assert status is not None
        assert (status.running, status.exit_code, status.signal) == (False, 137, 9)
    finally:
        rt.remove(p[0])


def test_a_restarted_node_adopts_a_running_container(
    rt: containers.Containers, pod: Callable[[], Pod], tmp_path: Path, cgroup_parent: str
) -> None:
    # The node that starts the container is a real process, killed with SIGKILL.
    uid, pn = pod()
    vol = tmp_path / "vol"
    vol.mkdir()
    node = f"""
import sys
from pathlib import Path
from kvd.local.node import containers
rt = containers.Containers(Path({str(rt.root)!r}), cgroup_parent={cgroup_parent!r})
spec = containers.ContainerSpec(
    name="c", env={{"PATH": {PATH!r}}},
    argv=("/bin/sh", "-c", "while [ ! -e /vol/go ]; do sleep 0.01; done; exit 4"),
    mounts=(containers.Mount(path=Path("/vol"), source=Path({str(vol)!r})),),
)
s = rt.start({uid!r}, spec, netns_path=Path({str(pn.netns_path)!r}),
             resolv_conf=Path({str(pn.resolv_conf)!r}), attempt=0)
print("PID", s.pid, flush=True)
sys.stdin.read()
"""
    process = subprocess.Popen(
        [sys.executable, "-c", node],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        pid = next(int(line.split()[1]) for line in process.stdout if line.startswith("PID "))
    finally:
        process.kill()
        process.wait(10)
    adopted = containers.Containers(rt.root, cgroup_parent=cgroup_parent)
    status = adopted.status(uid, "c")
    assert status is not None and status.running and status.pid == pid
    assert adopted.main_pid(uid, "c") == pid
    (vol / "go").write_text("")
    status = finished(adopted, uid)
    assert (status.exit_code, status.signal) == (4, None)


def test_memory_limit_is_applied_and_an_oom_kill_reported(
    rt: containers.Containers, pod: Callable[[], Pod]
) -> None:
    if not rt.cgroups.limits_memory:
        pytest.skip("no writable memory cgroup on this machine")
    p = pod()
    limit = 48 << 20
    start(rt, p, sh("exec sleep 300", memory_limit=limit))
    assert rt.memory_limit(p[0], "c") == limit
    pid = rt.main_pid(p[0], "c")
    assert pid is not None
    # Read back from the cgroup the process is actually in.
    line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":memory:" in x)
    own = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/")
    assert int((own / "memory.limit_in_bytes").read_text()) == limit
    rt.kill(p[0], "c")
    oom = containers.ContainerSpec(
        name="oom", env={}, memory_limit=limit,
        argv=("/usr/bin/dd", "if=/dev/zero", "of=/tmp/big", "bs=1M", "count=200"),
    )  # fmt: skip
    start(rt, p, oom)
    status = finished(rt, p[0], "oom")
    assert (status.exit_code, status.signal, status.reason) == (137, 9, "OOMKilled")
    assert "Killed" not in rt.log_path(p[0], "oom", 0).read_text()  # the shim says nothing


def test_remove_leaves_no_process_cgroup_mount_or_file(
    rt: containers.Containers, pod: Callable[[], Pod], tmp_path: Path
) -> None:
    p = pod()
    script = "setsid sh -c 'echo $$ > /vol/gc; exec sleep 300' & exec sleep 300"
    start(rt, p, sh(script, mounts=(containers.Mount(path=Path("/vol"), source=tmp_path),)))
    start(rt, p, sh("exit 0", name="done"))
    wait_for("gc", lambda: (tmp_path / "gc").exists() and (tmp_path / "gc").read_text() != "")
    main = rt.main_pid(p[0], "c")
    assert main is not None
    namespace = sandbox.mount_namespace(main)
    record = json.loads((rt.log_path(p[0], "c", 0).parent / "record.json").read_text())
    processes = [ProcessId.of(main), ProcessId.of(int((tmp_path / "gc").read_text()))]
    assert set(proc.tagged(namespace, record["tag"])) == {x.pid for x in processes if x}
    rt.remove(p[0])
    rt.remove(p[0])  # idempotent
    assert not any(x is not None and x.alive() for x in processes)
    # No process holds the namespace, so it is gone with every mount in it. (Its id alone may
    # already name another run's new namespace: the tag on its mounts is this attempt's.)
    assert proc.tagged(namespace, record["tag"]) == []
    assert rt.cgroups.parent is None or not (rt.cgroups.parent / p[0]).exists()
    assert not (rt.root / p[0]).exists()
    assert rt.pods() == []


def test_a_container_whose_shim_died_is_reported_lost(
    rt: containers.Containers, pod: Callable[[], Pod]
) -> None:
    p = pod()
    start(rt, p, sh("exec sleep 300"))
    record = json.loads((rt.log_path(p[0], "c", 0).parent / "record.json").read_text())
    assert ProcessId(*record["shim"]).signal(signal.SIGKILL)
    assert rt.status(p[0], "c").running  # type: ignore[union-attr]  # the program still runs
    rt.kill(p[0], "c")
    lost = rt.status(p[0], "c")
    assert lost is not None
    assert (lost.running, lost.exit_code, lost.reason) == (False, None, "ContainerStatusUnknown")
    assert rt.status(p[0], "c") == lost  # stable: the same finish time every time


def test_reap_leaves_no_zombie_shim(rt: containers.Containers, pod: Callable[[], Pod]) -> None:
    p = pod()
    start(rt, p, sh("exit 0"))
    finished(rt, p[0])
    record = json.loads((rt.log_path(p[0], "c", 0).parent / "record.json").read_text())
    shim = record["shim"][0]
    wait_for(
        "the shim to exit",
        lambda: Path(f"/proc/{shim}/stat").read_text().split(") ")[1][0] == "Z",
        interval=0.01,
    )
    # the exit is reported once, by pod: how the node notices it without reading statuses
    assert rt.reap() == {p[0]}
    assert not Path(f"/proc/{shim}").exists()
    assert rt.reap() == set()


def test_a_failed_start_says_why_and_leaves_nothing(
    rt: containers.Containers, pod: Callable[[], Pod]
) -> None:
    p = pod()
    with pytest.raises(containers.ContainerError, match="working directory /nonexistent/kvd"):
        start(rt, p, sh("true", working_dir=Path("/nonexistent/kvd")))
    assert rt.attempts(p[0], "c") == []
    assert rt.cgroups.parent is None or not (rt.cgroups.parent / p[0] / "c" / "0").exists()
    missing = containers.Mount(path=Path("/data"), source=Path("/nonexistent/kvd"))
    with pytest.raises(containers.ContainerError, match="mount source /nonexistent/kvd"):
        start(rt, p, sh("true", mounts=(missing,)))
    assert rt.attempts(p[0], "c") == []


def test_an_attempt_runs_once(rt: containers.Containers, pod: Callable[[], Pod]) -> None:
    p = pod()
    start(rt, p, sh("exit 0"))
    with pytest.raises(containers.ContainerError, match="started before"):
        start(rt, p, sh("exit 0"))
    start(rt, p, sh("exit 5"), attempt=1)
    assert rt.attempts(p[0], "c") == [0, 1]
    assert finished(rt, p[0]).exit_code == 5
    first = rt.status_of_attempt(p[0], "c", 0)
    assert first is not None and first.exit_code == 0


def test_a_status_read_while_a_container_is_being_created_never_finds_it_lost(
    rt: containers.Containers, pod: Callable[[], Pod], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's status loop runs beside its pod workers: a read that comes the instant the
    attempt's directory exists, before anything is recorded in it, must see a container that is
    starting, not one whose shim died (which is written down for good as lost)."""
    p = pod()
    uid = p[0]
    seen: list[containers.ContainerStatus | None] = []
    real_mkdir = Path.mkdir

    def mkdir_then_look(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        if self.name == "0" and self.parent.name == "c":  # the attempt's own directory
            seen.append(rt.status(uid, "c"))

    monkeypatch.setattr(Path, "mkdir", mkdir_then_look)
    status = start(rt, p, sh("sleep 30"))
    monkeypatch.undo()
    assert seen and seen[0] is not None and seen[0].reason is None, seen
    assert status.running
    assert rt.status(uid, "c").running  # type: ignore[union-attr]
