"""Watches as kube-apiserver serves them: replay from a resourceVersion, selectors on both sides
of each change, 410 Expired, initial events, watch-list and bookmarks.

The property at the end records a random history of creates, updates (labels changing) and
deletes, and checks that a watch started from every one of its resourceVersions, with and
without selectors, yields exactly the events a model of kube's watch predicts.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client, watch

from kvd.local.apiserver import watchstream
from kvd.local.apiserver.serviceaccounts.controller import ROOT_CA
from tests.local.apiserver.conftest import KUBECTL, Server
from tests.local.apiserver.watching import Event, Local, local_server

pytestmark = pytest.mark.timeout(300)

CMS = "/api/v1/namespaces/default/configmaps"


def _cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


def _stream(core: client.CoreV1Api, since: str, **kw: Any) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of a one-second watch of default's configmaps."""
    return [
        (e["type"], e["object"].metadata.name, e["object"].metadata.resource_version)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=since,
            timeout_seconds=1,
            **kw,
        )
    ]


# --- through the official client, against the server process -----------------------------------


def test_a_watch_from_a_version_replays_the_changes_of_objects_that_existed_then(
    server: Server,
) -> None:
    core = client.CoreV1Api(server.api())
    core.create_namespaced_config_map("default", _cm("kept"))
    core.create_namespaced_config_map("default", _cm("doomed"))
    since = core.list_namespaced_config_map("default").metadata.resource_version
    changed = core.patch_namespaced_config_map("kept", "default", {"data": {"x": "1"}})
    core.delete_namespaced_config_map("doomed", "default")
    after_delete = core.list_namespaced_config_map("default").metadata.resource_version

    assert _stream(core, since) == [
        ("MODIFIED", "kept", changed.metadata.resource_version),
        ("DELETED", "doomed", after_delete),
    ]
    # from just before the delete: an informer that lost its connection then must see it go
    assert _stream(core, changed.metadata.resource_version) == [("DELETED", "doomed", after_delete)]


def test_a_label_selector_turns_changes_into_added_and_deleted(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    core.create_namespaced_config_map("default", _cm("a", {"tier": "web"}, v="1"))
    since = core.list_namespaced_config_map("default").metadata.resource_version
    left = core.patch_namespaced_config_map(
        "a", "default", {"metadata": {"labels": {"tier": "db"}}, "data": {"v": "2"}}
    )
    core.patch_namespaced_config_map("a", "default", {"data": {"v": "3"}})  # unseen: no match
    back = core.patch_namespaced_config_map(
        "a", "default", {"metadata": {"labels": {"tier": "web"}}}
    )
    changed = core.patch_namespaced_config_map("a", "default", {"data": {"v": "4"}})

    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=since,
            label_selector="tier=web",
            timeout_seconds=1,
        )
    )
    seen = [(e["type"], e["object"].metadata.resource_version) for e in events]
    assert seen == [
        ("DELETED", left.metadata.resource_version),
        ("ADDED", back.metadata.resource_version),
        ("MODIFIED", changed.metadata.resource_version),
    ]
    # the DELETED carries the last state that matched, at the version it stopped matching
    gone = events[0]["object"]
    assert (gone.metadata.labels, gone.data) == ({"tier": "web"}, {"v": "1"})


def test_watch_list_options_are_checked_as_kube_apiserver_checks_them(server: Server) -> None:
    refused = {
        "sendInitialEvents=true": (
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
            "resourceVersionMatch to NotOlderThan"
        ),
        "resourceVersionMatch=NotOlderThan": (
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch "
            "unless sendInitialEvents is provided"
        ),
        "sendInitialEvents=true&resourceVersionMatch=Exact": (
            'resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"'
        ),
    }
    for query, message in refused.items():
        status = _raw_status(server, f"{CMS}?watch=true&{query}")
        assert (status["code"], status["reason"]) == (422, "Invalid"), query
        assert message in status["message"], status
        assert status["details"]["kind"] == "ListOptions"


def _raw_status(server: Server, path: str) -> dict[str, Any]:
    """The Status of a refused GET."""
    token = server.kubeconfig.read_text().split("token: ")[1].split()[0]
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(server.url + path, headers=headers)
    context = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            raise AssertionError(f"{path} answered {answer.status}")
    except urllib.error.HTTPError as error:
        parsed: dict[str, Any] = json.loads(error.read())
        return parsed


def test_kubectl_wait_follows_a_watch_list(server: Server) -> None:
    """kubectl 1.37 waits through client-go's watch-list (sendInitialEvents, then the bookmark
    that ends the initial events), then sees the change live."""
    server.kubectl("create", "configmap", "w", "--from-literal=x=1")
    waiting = subprocess.Popen(
        [KUBECTL, "wait", "--for=jsonpath={.data.x}=2", "configmap/w", "--timeout=60s", "-v=6"],
        env={"KUBECONFIG": str(server.kubeconfig), "HOME": str(server.data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.stderr is not None
        for line in waiting.stderr:  # kubectl logs each response as its headers arrive
            if '"Response"' in line and "watch=true" in line:
                assert "sendInitialEvents=true" in line, line
                break
        else:
            raise AssertionError(f"kubectl wait never watched: {waiting.wait()}")
        server.kubectl("patch", "configmap", "w", "-p", '{"data":{"x":"2"}}')
        out, _ = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        waiting.wait()
    assert waiting.returncode == 0
    assert "configmap/w condition met" in out


# --- in this process: shortened clocks, and the property -----------------------------------------


def _run_local(tmp: Path, scenario: Any, *, history: int = 100_000) -> None:
    async def main() -> None:
        async with local_server(tmp, history=history) as local:
            await scenario(local)

    asyncio.run(main())


def _is(kind: str) -> Any:
    return lambda event: event["type"] == kind


def test_a_quiet_watch_gets_bookmarks_once_the_revision_moves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watchstream, "BOOKMARK_SECONDS", 0.05)

    async def scenario(local: Local) -> None:
        await local.write("POST", CMS, _cm("a"))
        since = local.revision
        # a write elsewhere: this watch has nothing to send, but has read past it
        await local.write("POST", "/api/v1/namespaces/kube-system/configmaps", _cm("b"))
        events = await local.watch(
            CMS,
            {"resourceVersion": str(since), "allowWatchBookmarks": "true"},
            until=_is("BOOKMARK"),
        )
        assert events == [
            {
                "type": "BOOKMARK",
                "object": {
                    "kind": "ConfigMap",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(local.revision)},
                },
            }
        ]

    _run_local(tmp_path, scenario)


def test_a_watch_list_from_a_version_not_yet_written_times_out_as_kube_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watchstream, "FRESHNESS_SECONDS", 0.05)

    async def scenario(local: Local) -> None:
        ahead = local.revision + 5
        query = (
            f"watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
            f"&resourceVersion={ahead}"
        )
        status, answer = await local.call("GET", f"{CMS}?{query}")
        assert (status, answer["reason"]) == (504, "Timeout")
        assert answer["message"] == (
            f"Timeout: Too large resource version: {ahead}, current: {local.revision}"
        )
        assert answer["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
        assert answer["details"]["retryAfterSeconds"] == 1

    _run_local(tmp_path, scenario)


def test_a_watch_list_from_the_next_version_gets_it_once_written(tmp_path: Path) -> None:
    async def scenario(local: Local) -> None:
        query = {
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "resourceVersion": str(local.revision + 1),
        }
        watching = asyncio.create_task(local.watch(CMS, query, until=_is("BOOKMARK")))
        await local.write("POST", CMS, _cm("next"))
        events = await watching
        assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
            ("ADDED", ROOT_CA),  # in every namespace from its start
            ("ADDED", "next"),
            ("BOOKMARK", None),
        ]
        assert events[-1]["object"]["metadata"]["resourceVersion"] == str(local.revision)

    _run_local(tmp_path, scenario)


# The property. A model of kube's watch: each change is seen through the selector on both sides.


@dataclass(frozen=True)
class Change:
    revision: int
    name: str
    before: dict[str, str] | None  # labels; None: did not exist
    after: dict[str, str] | None  # labels; None: deleted


SELECTORS: dict[str, tuple[dict[str, str], Any]] = {
    "everything": ({}, lambda name, labels: True),
    "tier=web": ({"labelSelector": "tier=web"}, lambda name, labels: labels.get("tier") == "web"),
    "tier!=db": ({"labelSelector": "tier!=db"}, lambda name, labels: labels.get("tier") != "db"),
    "name!=b": (
        {"fieldSelector": "metadata.name!=b"},
        lambda name, labels: name != "b",
    ),
}
END = "zz-end"  # written last, matching every selector: a watch has everything once it arrives


def expected(changes: list[Change], since: int, matches: Any) -> list[tuple[str, str, int, Any]]:
    out = []
    for c in changes:
        if c.revision <= since:
            continue
        now = c.after is not None and matches(c.name, c.after)
        was = c.before is not None and matches(c.name, c.before)
        if now:
            out.append(("MODIFIED" if was else "ADDED", c.name, c.revision, c.after))
        elif was:
            out.append(("DELETED", c.name, c.revision, c.before))
    return out


def seen(events: list[Event]) -> list[tuple[str, str, int, Any]]:
    return [
        (
            e["type"],
            e["object"]["metadata"]["name"],
            int(e["object"]["metadata"]["resourceVersion"]),
            e["object"]["metadata"].get("labels") or {},
        )
        for e in events
    ]


TIERS = st.sampled_from([{"tier": "web"}, {"tier": "db"}, {}])
WRITES = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["write", "delete"]), TIERS),
    min_size=1,
    max_size=20,
)


@settings(max_examples=25, deadline=None)
@given(
    writes=WRITES,
    history=st.integers(min_value=4, max_value=40),
    restart=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
)
def test_a_watch_from_every_version_of_a_history_yields_exactly_the_later_events(
    writes: list[tuple[str, str, dict[str, str]]], history: int, restart: int | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_replay_every_version(Path(tmp), writes, history, restart))


async def _replay_every_version(
    data: Path, writes: list[tuple[str, str, dict[str, str]]], history: int, restart: int | None
) -> None:
    recorded = Recorded()
    async with local_server(data, history=history) as local:
        first = local.revision
        await recorded.seed(local)
        for i, (name, op, labels) in enumerate(writes):
            if i == restart:
                break
            await recorded.apply(local, name, op, labels)
    # a restart in the middle (or none): the rest, and every watch, after the history is
    # read back from disk
    async with local_server(data, history=history) as local:
        for name, op, labels in writes[restart or len(writes) :]:
            await recorded.apply(local, name, op, labels)
        await recorded.apply(local, END, "write", {"tier": "web"})
        changes, last = recorded.changes, local.revision
        assert [c.revision for c in changes] == list(range(first + 1, last + 1))

        for since in range(first, last):
            for name, (query, matches) in SELECTORS.items():
                events = await local.watch(
                    CMS,
                    {"resourceVersion": str(since), **query},
                    until=lambda e: e["type"] == "ERROR" or e["object"]["metadata"]["name"] == END,
                )
                if since < last - history:  # older than the kept history
                    assert [e["type"] for e in events] == ["ERROR"], (since, name, events)
                    status = events[0]["object"]
                    assert (status["code"], status["reason"]) == (410, "Expired")
                    floor = last - history
                    assert status["message"] == f"too old resource version: {since} ({floor})"
                else:
                    assert seen(events) == expected(changes, since, matches), (since, name)

        # the current state first, ended by a bookmark, from any version: a watch-list
        for rv in ("", "0", str(first), str(last)):
            for name, (query, matches) in SELECTORS.items():
                options = {"resourceVersion": rv, "allowWatchBookmarks": "true", **query}
                if rv not in ("", "0"):
                    options.update(sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
                events = await local.watch(CMS, options, until=_is("BOOKMARK"))
                assert seen(events[:-1]) == [
                    ("ADDED", n, recorded.last_write(n), labels)
                    for n, labels in sorted(recorded.state.items())
                    if matches(n, labels)
                ], (rv, name)
                assert events[-1]["object"]["metadata"] == {
                    "resourceVersion": str(last),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }


@dataclass
class Recorded:
    """The writes made, as the model sees them, and the labels of what exists now."""

    changes: list[Change] = field(default_factory=list)
    state: dict[str, dict[str, str]] = field(default_factory=dict)
    seeded: dict[str, int] = field(default_factory=dict)  # what existed before: its version

    async def seed(self, local: Local) -> None:
        """What the namespace holds before the first write (kube-root-ca.crt)."""
        _, listed = await local.call("GET", CMS)
        for item in listed["items"]:
            meta = item["metadata"]
            self.state[meta["name"]] = meta.get("labels") or {}
            self.seeded[meta["name"]] = int(meta["resourceVersion"])

    async def apply(self, local: Local, name: str, op: str, labels: dict[str, str]) -> None:
        before = self.state.get(name)
        if before is not None and op == "delete":
            await local.write("DELETE", f"{CMS}/{name}")
            del self.state[name]
        elif before is not None:
            body = _cm(name, labels, n=str(len(self.changes)))  # a change, even of labels alone
            await local.write("PUT", f"{CMS}/{name}", body)
            self.state[name] = labels
        else:
            await local.write("POST", CMS, _cm(name, labels))
            self.state[name] = labels
        self.changes.append(Change(local.revision, name, before, self.state.get(name)))

    def last_write(self, name: str) -> int:
        return max([c.revision for c in self.changes if c.name == name] or [self.seeded[name]])
