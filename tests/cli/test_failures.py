"""Every way `kvd` and `kvdctl` fail, as a user meets them: the installed console scripts run as
processes, each failure one line on stderr that names what went wrong, exit status 1 (2 for a
usage error), never a traceback — and nothing left running."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from kvd.kube import client
from tests.local.apiserver.conftest import start_server
from tests.local.node.conftest import KVD, Cluster, new_cluster

pytestmark = pytest.mark.integration  # runs the installed kvd and kvdctl programs

KVDCTL = str(Path(KVD).parent / "kvdctl")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run(*command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, stdin=None
    )


def assert_one_line(
    done: subprocess.CompletedProcess[str], prefix: str, *said: str, code: int = 1
) -> str:
    """`done` failed with `code` and said, on one stderr line starting with `prefix`, `said`."""
    err = done.stderr
    assert "Traceback" not in err, err
    assert done.returncode == code, f"exit {done.returncode}:\n{err}"
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{prefix}: "), err
    for words in said:
        assert words in err, err
    return err


def test_local_up_as_a_user_says_it_needs_root(tmp_path: Path) -> None:
    data = tmp_path / "cluster"
    # (nobody must be able to run the venv's Python: `setpriv … kvd version` shows whether)
    done = run(*NOBODY, KVD, "local", "up", "--data-dir", str(data), "--port", "0")
    assert_one_line(
        done,
        "kvd local up",
        "must run as root (it creates network namespaces, a bridge and cgroups)",
    )
    assert not data.exists()


def test_local_down_of_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    data = tmp_path / "typo"
    done = run(KVD, "local", "down", "--data-dir", str(data))
    assert_one_line(done, "kvd local down", f"no local cluster in {data}", "does not exist")
    assert not data.exists()


@pytest.mark.parametrize(
    "state",
    [
        pytest.param("{half", id="not-json"),
        pytest.param('{"components": [{"name": "node"}]}', id="not-a-record"),
    ],
)
@pytest.mark.parametrize("command", ["down", "status"])
def test_local_down_and_status_with_a_corrupt_cluster_json(
    tmp_path: Path, command: str, state: str
) -> None:
    (tmp_path / "cluster.json").write_text(state)
    done = run(KVD, "local", command, "--data-dir", str(tmp_path))
    assert_one_line(done, f"kvd local {command}", f"{tmp_path / 'cluster.json'} is corrupt")
    assert (tmp_path / "cluster.json").read_text() == state  # kept, for a person to look at


@pytest.mark.parametrize("command", [["console", "demo"], ["stop", "demo"], ["pause", "vmi", "x"]])
def test_kvdctl_without_a_cluster(tmp_path: Path, command: list[str]) -> None:
    done = run(KVDCTL, *command, "--data-dir", str(tmp_path))
    assert_one_line(
        done,
        f"kvdctl {command[0]}",
        f"the local cluster in {tmp_path} is not running",
        "kvd local up",
    )


@pytest.mark.parametrize("command", [["console", "demo"], ["start", "demo"], ["vnc", "demo"]])
def test_kvdctl_with_an_api_server_that_does_not_answer(tmp_path: Path, command: list[str]) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    extra = ["--proxy-only"] if command[0] == "vnc" else []
    done = run(KVDCTL, *command, *extra, "--kubeconfig", str(kubeconfig))
    assert_one_line(done, f"kvdctl {command[0]}", "cannot reach the API server")


@pytest.mark.parametrize(
    ("program", "args", "said"),
    [
        pytest.param(
            "handler",
            ["--listen", "127.0.0.1:0"],
            "--listen needs --tls-cert-file and --tls-key-file",
            id="handler-without-tls",
        ),
        pytest.param(
            "handler",
            ["--listen", "0.0.0.0:0", "--tls-cert-file", "c", "--tls-key-file", "k"],
            "give --advertise-address",
            id="handler-on-a-wildcard",
        ),
        pytest.param(
            "handler",
            [
                "--listen",
                "127.0.0.1:0",
                "--tls-cert-file",
                "/nonexistent.crt",
                "--tls-key-file",
                "k",
            ],
            "certificate file /nonexistent.crt does not exist",
            id="handler-certificate-missing",
        ),
        pytest.param(
            "controller",
            ["--listen", "127.0.0.1:0", "--tls-cert-file", "c", "--tls-key-file", "k"],
            "--listen needs --handler-ca-file, --handler-token-file",
            id="controller-without-handler-credentials",
        ),
    ],
)
def test_a_daemon_told_to_serve_without_what_it_takes(
    tmp_path: Path, program: str, args: list[str], said: str
) -> None:
    """Refused before the daemon touches the cluster (the kubeconfig does not even exist)."""
    common = ["--kubeconfig", str(tmp_path / "nothere")]
    if program == "handler":
        common += ["--node-name", "n", "--state-dir", str(tmp_path / "s")]
        common += ["--launcher-dir", str(tmp_path / "l")]
    done = run(KVD, program, *common, *args)
    assert_one_line(done, f"kvd {program}", said)


def test_a_bad_option_value_is_a_usage_error() -> None:
    done = run(KVD, "launcher", "--namespace", "n", "--name", "x", "--uid", "u", "--run-dir",
               "/nonexistent", "--grace-period-seconds", "-1")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "kvd launcher: error: argument --grace-period-seconds: '-1' is not a whole number of "
        "seconds, 0 or more"
    )


def _up(cluster: Cluster, port: int) -> subprocess.CompletedProcess[str]:
    return run(
        KVD, "local", "up", "--data-dir", str(cluster.data_dir), "--port", str(port), "--detach",
        *cluster.node_args(),
    )  # fmt: skip


def test_local_up_on_a_port_in_use_names_the_port_and_leaves_nothing() -> None:
    cluster = new_cluster()
    try:
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            done = _up(cluster, port)
        assert_one_line(
            done,
            "kvd local up",
            "apiserver exited with 1 before it was ready",
            f"('127.0.0.1', {port}): address already in use",
            f"{cluster.data_dir}/logs/apiserver.log",
        )
        assert cluster.leftovers() == []
        assert not (cluster.data_dir / "cluster.json").exists()
    finally:
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


def test_local_up_says_why_the_api_server_refused_kvds_namespace() -> None:
    """A `kvd-system` namespace left Terminating (a finalizer no one removes) refuses what helm
    installs in it: the API's own answer, through helm's, on one line, and everything `up`
    started is stopped again."""
    cluster = new_cluster()
    server = start_server(cluster.data_dir)  # the same database the cluster's will open
    try:
        raw = client.Raw(client.connect(server.kubeconfig))
        held = {"metadata": {"name": "kvd-system", "finalizers": ["example.com/hold"]}}
        raw.create("/api/v1/namespaces", held)
        raw.delete("/api/v1/namespaces/kvd-system")
    finally:
        server.stop()
    try:
        done = _up(cluster, 0)
        assert_one_line(
            done,
            "kvd local up",
            "helm upgrade --install of charts/kvd failed",
            "unable to create new content in namespace kvd-system because it is being terminated",
        )
        assert done.stdout.startswith("apiserver  ready"), done.stdout
        assert cluster.leftovers() == []
        assert not (cluster.data_dir / "cluster.json").exists()
    finally:
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
        server.log.unlink(missing_ok=True)
