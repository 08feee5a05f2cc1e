"""`install.daemons`: what `kvd local status` shows of kvd's daemon pods, from the API's answers
(a stand-in for the two GETs it makes; the real API server's side is checked by
tests/local/node/test_local_up.py)."""

from __future__ import annotations

from typing import Any

from kvd.kube.client import ApiError
from kvd.local import install

Json = dict[str, Any]


class Answers:
    """Answers `Raw.get` from pods by component and the Lease's holder."""

    def __init__(self, pods: dict[str, list[Json]], holder: str | None) -> None:
        self.pods, self.holder = pods, holder

    def get(self, path: str, query: dict[str, str] | None = None) -> Json:
        if path.endswith(f"/leases/{install.LEASE}"):
            if self.holder is None:
                raise ApiError(404, "NotFound", "no lease")
            return {"spec": {"holderIdentity": self.holder}}
        assert path == f"/api/v1/namespaces/{install.NAMESPACE}/pods", path
        assert query is not None
        component = query["labelSelector"].rsplit("=", 1)[1]
        return {"items": self.pods.get(component, [])}


def pod(name: str, phase: str, *, ready: bool, deleting: bool = False) -> Json:
    meta: Json = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T19:00:00Z"
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": meta, "status": {"phase": phase, "conditions": [condition]}}


def test_each_pod_with_its_readiness_and_the_leader_marked() -> None:
    answers = Answers(
        {
            "handler": [pod("kvd-handler-x", "Running", ready=True)],
            "controller": [
                pod("kvd-controller-b", "Running", ready=True),
                pod("kvd-controller-a", "Pending", ready=False),
            ],
        },
        holder="kvd-controller-b",
    )
    assert install.daemons(answers) == [  # type: ignore[arg-type]
        install.Daemon("handler", "kvd-handler-x", "Running", ready=True),
        install.Daemon("controller", "kvd-controller-a", "Pending", ready=False),
        install.Daemon("controller", "kvd-controller-b", "Running", ready=True, leading=True),
    ]


def test_a_component_without_a_live_pod_shows_as_missing() -> None:
    answers = Answers(
        {"controller": [pod("kvd-controller-a", "Running", ready=True, deleting=True)]},
        holder=None,
    )
    assert install.daemons(answers) == [  # type: ignore[arg-type]
        install.Daemon("handler", "", "Missing", ready=False),
        install.Daemon("controller", "", "Missing", ready=False),
    ]
