"""Projected volumes made real on the host (pure logic: the API reads and token requests are
small functions given in; the pods that read these files run in test_serviceaccount_pod)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from kvd.kube.client import ApiError
from kvd.local import images
from kvd.local.node import projected, tokens, volumes
from kvd.local.node.podspec import ContainerConfigError
from tests.support.clock import FakeClock

Json = dict[str, Any]

KUBE_API_ACCESS = {
    "defaultMode": 420,
    "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {
            "downwardAPI": {
                "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
            }
        },
    ],
}


def _pod(*volumes_: Json, **meta: Any) -> Json:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid", **meta},
        "spec": {"serviceAccountName": "robot", "volumes": list(volumes_), "containers": []},
    }


class Issuer:
    """Answers TokenRequests as the API server would, counting them."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.asked: list[tuple[str, str, Json]] = []
        self.refuse: ApiError | None = None

    def __call__(self, namespace: str, account: str, body: Json) -> Json:
        if self.refuse is not None:
            raise self.refuse
        self.asked.append((namespace, account, body))
        expires = self.clock() + body["spec"]["expirationSeconds"]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return {"status": {"token": f"token-{len(self.asked)}", "expirationTimestamp": stamp}}


def _lookup(kind: str, namespace: str, name: str) -> Json | None:
    if (kind, namespace, name) == ("configmaps", "ns", "kube-root-ca.crt"):
        return {"data": {"ca.crt": "PEM"}}
    return None


def _prepare(tmp_path: Path, pod: Json, manager: tokens.TokenManager) -> dict[str, Any]:
    return volumes.prepare(
        pod,
        volume_dir=lambda name: tmp_path / name,
        store=images.ImageStore(tmp_path / "images"),
        lookup=_lookup,
        read_pvc=lambda namespace, name: (None, None),
        tokens=manager,
    )


def test_kubes_token_volume_is_written_with_its_modes(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000)
    issuer = Issuer(clock)
    manager = tokens.TokenManager(issuer, clock=clock)
    prepared = _prepare(tmp_path, _pod({"name": "api", "projected": KUBE_API_ACCESS}), manager)

    volume = prepared["api"]
    assert volume.read_only and volume.source == tmp_path / "api"
    root = tmp_path / "api"
    assert {p.name: p.read_text() for p in root.iterdir() if not p.name.startswith("..")} == {
        "token": "token-1",
        "ca.crt": "PEM",
        "namespace": "ns",
    }
    assert all((root / name).is_symlink() for name in ("token", "ca.crt", "namespace"))
    assert os.readlink(root / "token") == "..data/token"
    assert (root / "token").stat().st_mode & 0o777 == 0o644
    ((namespace, account, body),) = issuer.asked
    assert (namespace, account) == ("ns", "robot")
    assert body["spec"] == {
        "expirationSeconds": 3607,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pod-uid"},
    }


def test_a_token_is_renewed_after_80_percent_of_its_life(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000)
    issuer = Issuer(clock)
    manager = tokens.TokenManager(issuer, clock=clock)
    pod = _pod({"name": "api", "projected": KUBE_API_ACCESS})
    _prepare(tmp_path, pod, manager)
    data = os.readlink(tmp_path / "api" / "..data")
    assert manager.refresh_at("pod-uid") == pytest.approx(clock() + 0.8 * 3607)

    clock.advance(0.8 * 3607 - 1)
    _prepare(tmp_path, pod, manager)
    assert len(issuer.asked) == 1  # still fresh: nothing asked, nothing written
    assert os.readlink(tmp_path / "api" / "..data") == data

    clock.advance(2)
    _prepare(tmp_path, pod, manager)
    assert len(issuer.asked) == 2
    assert (tmp_path / "api" / "token").read_text() == "token-2"
    new_data = os.readlink(tmp_path / "api" / "..data")
    assert new_data != data and not (tmp_path / "api" / data).exists()  # the old set is gone

    manager.forget("pod-uid")
    assert manager.refresh_at("pod-uid") is None


def test_a_refused_token_request_leaves_the_pod_creating(tmp_path: Path) -> None:
    clock = FakeClock()
    issuer = Issuer(clock)
    issuer.refuse = ApiError(403, "Forbidden", "no, not you")
    manager = tokens.TokenManager(issuer, clock=clock)
    with pytest.raises(ContainerConfigError) as caught:
        _prepare(tmp_path, _pod({"name": "api", "projected": KUBE_API_ACCESS}), manager)
    assert caught.value.reason == "ContainerCreating"
    assert 'volume "api": failed to fetch token: no, not you' in caught.value.message


def test_downward_api_files_show_the_pods_metadata(tmp_path: Path) -> None:
    items = [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}, "mode": 0o600},
        {"path": "sub/name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
    ]
    pod = _pod(
        {"name": "info", "downwardAPI": {"items": items}},
        labels={"tier": "web", "app": 'say "hi"'},
        annotations={"note": "x"},
    )
    _prepare(tmp_path, pod, tokens.TokenManager(Issuer(FakeClock())))
    root = tmp_path / "info"
    assert (root / "labels").read_text() == 'app="say \\"hi\\""\ntier="web"'
    assert (root / "annotations").read_text() == 'note="x"'
    assert (root / "annotations").stat().st_mode & 0o777 == 0o600
    assert (root / "sub" / "name").read_text() == "p"
    assert (root / "tier").read_text() == "web"


@pytest.mark.parametrize(
    ("source", "reason", "words"),
    [
        pytest.param(
            {"configMap": {"name": "missing"}},
            "ContainerCreating",
            'configmap "missing" not found',
            id="missing-configmap",
        ),
        pytest.param(
            {"clusterTrustBundle": {"path": "b", "signerName": "x"}},
            "CreateContainerConfigError",
            "clusterTrustBundle sources are not supported",
            id="unsupported-source",
        ),
        pytest.param(
            {
                "downwardAPI": {
                    "items": [{"path": "../escape", "fieldRef": {"fieldPath": "metadata.name"}}]
                }
            },
            "CreateContainerConfigError",
            "must be relative",
            id="escaping-path",
        ),
    ],
)
def test_what_cannot_be_projected_is_refused_by_name(
    tmp_path: Path, source: Json, reason: str, words: str
) -> None:
    pod = _pod({"name": "v", "projected": {"sources": [source]}})
    with pytest.raises(ContainerConfigError) as caught:
        _prepare(tmp_path, pod, tokens.TokenManager(Issuer(FakeClock())))
    assert caught.value.reason == reason
    assert words in caught.value.message


def test_the_writer_drops_what_the_payload_no_longer_has(tmp_path: Path) -> None:
    assert projected.atomic_write(tmp_path, {"a": (b"1", 0o644), "b/c": (b"2", 0o644)})
    assert not projected.atomic_write(tmp_path, {"a": (b"1", 0o644), "b/c": (b"2", 0o644)})
    assert projected.atomic_write(tmp_path, {"a": (b"3", 0o644)})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("..")) == ["a"]
    assert (tmp_path / "a").read_text() == "3"
    assert (
        len(
            [
                p
                for p in tmp_path.iterdir()
                if p.name.startswith("..") and p.is_dir() and not p.is_symlink()
            ]
        )
        == 1
    )
