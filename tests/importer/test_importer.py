"""The importer against a real HTTP(S) server on loopback serving the demo guest's qcow2, and
real qemu-img: what lands in the volume, the progress seen on the metrics port while the body is
still coming, and each way an import fails (with whether a retry may help)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from kvd.importer import progress, result
from kvd.importer import run as importer
from tests.support import image_server
from tests.support.waiting import wait_for

CAPACITY = 64 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _info(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", str(path)], check=True, capture_output=True
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def _job(tmp_path: Path, **kw: object) -> importer.Job:
    target = tmp_path / "volume"
    target.mkdir(exist_ok=True)
    args: dict[str, object] = {
        "kind": "http",
        "target": target,
        "owner_uid": "uid-1",
        "capacity": CAPACITY,
        "listen_port": None,
        **kw,
    }
    return importer.Job(**args)  # type: ignore[arg-type]


def _same_content(a: Path, a_fmt: str, b: Path) -> bool:
    compared = subprocess.run(
        ["qemu-img", "compare", "-f", a_fmt, "-F", "raw", str(a), str(b)],
        check=False,
        capture_output=True,
    )
    return compared.returncode == 0


def test_http_qcow2_becomes_a_raw_disk_img_with_progress_along_the_way(
    tmp_path: Path, guest_dir: Path
) -> None:
    qcow2 = guest_dir / "kvd-demo.qcow2"
    served = image_server.Served(qcow2, gate=threading.Event())
    port = _free_port()
    with image_server.serve(served) as url:
        job = _job(tmp_path, url=url, listen_port=port)
        outcome: list[result.Outcome] = []
        worker = threading.Thread(target=lambda: outcome.append(importer.run(job)))
        worker.start()
        served.halfway.wait(30)
        # The server holds the second half back: the progress climbs to 50% and stays there.
        seen = wait_for(
            "progress to reach half while the body is held half-way",
            lambda: (p := progress.scrape("127.0.0.1", "uid-1", port=port)) and p >= 49.9 and p,
        )
        served.gate.set()  # type: ignore[union-attr]
        worker.join(120)
    assert outcome == [result.Outcome(succeeded=True, message="Import Complete")]
    assert seen <= 50.01, f"half the body was sent, progress said {seen}"
    disk = job.target / importer.DISK_IMAGE
    info = _info(disk)
    assert info["format"] == "raw"
    assert info["virtual-size"] == (CAPACITY * (1 - 0.055)) // (1 << 20) * (1 << 20)
    assert _same_content(qcow2, "qcow2", disk)
    assert sorted(p.name for p in job.target.iterdir()) == ["disk.img"], "scratch left behind"


def test_basic_auth_from_the_secret(tmp_path: Path, guest_dir: Path) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", auth=("alice", "s3cret"))
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "accessKeyId").write_text("alice")
    (secret / "secretKey").write_text("s3cret")
    with image_server.serve(served) as url:
        refused = importer.run(_job(tmp_path, url=url))
        done = importer.run(_job(tmp_path, url=url, secret_dir=secret))
    assert not refused.succeeded and not refused.retryable
    assert "401" in refused.message
    assert done.succeeded, done.message


def test_https_trusts_the_cert_config_map_ca(tmp_path: Path, guest_dir: Path) -> None:
    ca, cert, key = image_server.make_ca(tmp_path)
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.pem").write_bytes(ca.read_bytes())
    served = image_server.Served(guest_dir / "kvd-demo.qcow2")
    with image_server.serve(served, tls=(cert, key)) as url:
        untrusted = importer.run(_job(tmp_path, url=url))
        trusted = importer.run(_job(tmp_path, url=url, cert_dir=certs))
    assert not untrusted.succeeded and "CERTIFICATE_VERIFY_FAILED" in untrusted.message
    assert not untrusted.retryable
    assert trusted.succeeded, trusted.message


def test_404_fails_for_good(tmp_path: Path, guest_dir: Path) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", status=404)
    with image_server.serve(served) as url:
        outcome = importer.run(_job(tmp_path, url=url))
    assert not outcome.succeeded and not outcome.retryable
    assert "expected status code 200, got 404" in outcome.message
    assert list((tmp_path / "volume").iterdir()) == []


def test_500_may_be_retried(tmp_path: Path, guest_dir: Path) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", status=503)
    with image_server.serve(served) as url:
        outcome = importer.run(_job(tmp_path, url=url))
    assert not outcome.succeeded and outcome.retryable and "503" in outcome.message


def test_truncated_body_is_refused(tmp_path: Path, guest_dir: Path) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", truncate=True)
    with image_server.serve(served) as url:
        outcome = importer.run(_job(tmp_path, url=url))
    assert not outcome.succeeded and outcome.retryable
    assert "truncated" in outcome.message or "broke off" in outcome.message
    assert list((tmp_path / "volume").iterdir()) == []


def test_qcow2_with_a_backing_file_is_refused(tmp_path: Path, guest_dir: Path) -> None:
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b",
         str(guest_dir / "kvd-demo.qcow2"), str(overlay)],
        check=True, capture_output=True,
    )  # fmt: skip
    with image_server.serve(image_server.Served(overlay)) as url:
        outcome = importer.run(_job(tmp_path, url=url))
    assert not outcome.succeeded and not outcome.retryable
    assert "backing file" in outcome.message


def test_image_larger_than_the_volume_is_refused(tmp_path: Path, guest_dir: Path) -> None:
    with image_server.serve(image_server.Served(guest_dir / "kvd-demo.qcow2")) as url:
        outcome = importer.run(_job(tmp_path, url=url, capacity=8 << 20))
    assert not outcome.succeeded and "larger than the reported available storage" in outcome.message


def test_registry_source_takes_the_disk_of_the_image(tmp_path: Path, guest_dir: Path) -> None:
    image = tmp_path / "image"
    (image / "disk").mkdir(parents=True)
    (image / "disk" / "guest.qcow2").write_bytes((guest_dir / "kvd-demo.qcow2").read_bytes())
    job = _job(tmp_path, kind="registry", source_path=image)
    outcome = importer.run(job)
    assert outcome.succeeded, outcome.message
    assert _same_content(guest_dir / "kvd-demo.qcow2", "qcow2", job.target / "disk.img")


def test_blank_is_a_sparse_disk_of_the_usable_size(tmp_path: Path) -> None:
    job = _job(tmp_path, kind="blank")
    assert importer.run(job).succeeded
    disk = job.target / "disk.img"
    assert disk.stat().st_size == 60 << 20
    assert disk.stat().st_blocks == 0


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        pytest.param("", None, id="empty"),
        pytest.param(
            'x\n{"importer": "failed", "message": "got 404", "retryable": false}\n',
            result.Outcome(succeeded=False, message="got 404"),
            id="failed",
        ),
        pytest.param('{"event": "x"}\nnot json {', None, id="no-outcome"),
    ],
)
def test_outcome_is_read_back_from_the_log(log: str, expected: result.Outcome | None) -> None:
    assert result.parse(log) == expected
