"""Events: one store, two APIs, as kube-apiserver serves them. An Event written through core/v1
(as kvd's own recorder and kubectl's tools write them) is an events.k8s.io/v1 Event too, with
that API's field names, and the other way round, for get, list, selectors, updates and watch."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kvd.kube.client import Raw
from kvd.kube.events import NORMAL, Recorder
from tests.local.apiserver.conftest import Server
from tests.local.apiserver.watching import Local, local_server

pytestmark = pytest.mark.timeout(120)
V1 = "/api/v1/namespaces/default/events"
EVENTS_V1 = "/apis/events.k8s.io/v1/namespaces/default/events"


def test_a_core_event_is_an_events_k8s_io_event(server: Server) -> None:
    raw = Raw(server.api())
    cm = raw.create("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "subject"}})
    # kvd's own recorder writes core/v1 Events, as it always has
    Recorder(raw=raw, component="kvd-controller", host="node-1").event(
        cm, NORMAL, "Tested", "seen through both APIs"
    )
    (core,) = raw.get(V1)["items"]
    assert (core["reason"], core["message"], core["count"]) == (
        "Tested",
        "seen through both APIs",
        1,
    )

    viewed = raw.get(f"{EVENTS_V1}/{core['metadata']['name']}")
    assert (viewed["apiVersion"], viewed["kind"]) == ("events.k8s.io/v1", "Event")
    assert viewed["metadata"] == core["metadata"]
    assert viewed["regarding"] == core["involvedObject"]
    assert viewed["note"] == "seen through both APIs"
    assert viewed["deprecatedSource"] == {"component": "kvd-controller", "host": "node-1"}
    assert viewed["deprecatedFirstTimestamp"] == core["firstTimestamp"]
    assert viewed["deprecatedLastTimestamp"] == core["lastTimestamp"]
    assert viewed["deprecatedCount"] == 1
    assert viewed["eventTime"] is None  # required by the API, unset by the old one: null
    for old_name in ("message", "involvedObject", "source", "count", "firstTimestamp"):
        assert old_name not in viewed

    # field selectors by the view's names
    selected = raw.get(EVENTS_V1, {"fieldSelector": "regarding.name=subject,type=Normal"})
    assert [e["metadata"]["name"] for e in selected["items"]] == [core["metadata"]["name"]]
    assert raw.get(EVENTS_V1, {"fieldSelector": "regarding.name=other"})["items"] == []
    listed = server.kubectl("get", "events.v1.events.k8s.io").stdout
    assert "Tested" in listed and "configmap/subject" in listed


def test_an_events_k8s_io_event_is_a_core_event(server: Server) -> None:
    api = server.api()
    cm = client.CoreV1Api(api).create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="subject"))
    )
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)
    event = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="subject.1"),
        event_time=when,
        reporting_controller="example.com/frobber",
        reporting_instance="frobber-1",
        action="Frobnicate",
        reason="Frobbed",
        note="it was frobbed",
        type="Warning",
        regarding=client.V1ObjectReference(
            api_version="v1",
            kind="ConfigMap",
            name="subject",
            namespace="default",
            uid=cm.metadata.uid,
        ),
        series=client.EventsV1EventSeries(count=2, last_observed_time=when),
    )
    created = client.EventsV1Api(api).create_namespaced_event("default", event)
    assert (created.note, created.reporting_controller) == ("it was frobbed", "example.com/frobber")

    core = client.CoreV1Api(api).read_namespaced_event("subject.1", "default")
    assert (core.message, core.reporting_component, core.reporting_instance) == (
        "it was frobbed",
        "example.com/frobber",
        "frobber-1",
    )
    assert (core.involved_object.name, core.involved_object.uid) == ("subject", cm.metadata.uid)
    assert (core.action, core.reason, core.type, core.event_time) == (
        "Frobnicate",
        "Frobbed",
        "Warning",
        when,
    )
    assert core.series.count == 2

    # updated through one API, read through the other
    client.CoreV1Api(api).patch_namespaced_event(
        "subject.1", "default", {"message": "frobbed again"}
    )
    assert client.EventsV1Api(api).read_namespaced_event("subject.1", "default").note == (
        "frobbed again"
    )
    client.EventsV1Api(api).patch_namespaced_event("subject.1", "default", {"note": "thrice"})
    assert client.CoreV1Api(api).read_namespaced_event("subject.1", "default").message == "thrice"

    # kubectl's tools read core/v1: the event is there, and for its object
    assert "thrice" in server.kubectl("events").stdout
    assert "thrice" in server.kubectl("describe", "configmap", "subject").stdout

    client.EventsV1Api(api).delete_namespaced_event("subject.1", "default")
    assert client.CoreV1Api(api).list_namespaced_event("default").items == []


def test_a_watch_through_either_api_sees_events_written_through_the_other(tmp_path: Path) -> None:
    async def scenario(local: Local) -> None:
        since = local.revision
        await local.write(
            "POST",
            V1,
            {
                "metadata": {"name": "old"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "reason": "Started",
                "message": "core",
                "count": 1,
            },
        )
        await local.write(
            "POST",
            EVENTS_V1,
            {
                "metadata": {"name": "new"},
                "eventTime": "2026-01-01T00:00:00.000000Z",
                "reportingController": "example.com/c",
                "reportingInstance": "c-1",
                "action": "Act",
                "reason": "Acted",
                "note": "events.k8s.io",
                "type": "Normal",
                "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            },
        )
        status, _ = await local.call("DELETE", f"{EVENTS_V1}/old")
        assert status == 200

        def done(e: dict[str, Any]) -> bool:
            return e["type"] == "DELETED"

        viewed = await local.watch(EVENTS_V1, {"resourceVersion": str(since)}, until=done)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in viewed] == [
            ("ADDED", "old"),
            ("ADDED", "new"),
            ("DELETED", "old"),
        ]
        assert [e["object"].get("note") for e in viewed] == ["core", "events.k8s.io", "core"]
        assert {e["object"]["apiVersion"] for e in viewed} == {"events.k8s.io/v1"}

        core = await local.watch(V1, {"resourceVersion": str(since)}, until=done)
        assert [e["object"].get("message") for e in core] == ["core", "events.k8s.io", "core"]
        assert core[1]["object"]["reportingComponent"] == "example.com/c"
        assert json.dumps(core[1]["object"]["involvedObject"]) == json.dumps(
            viewed[1]["object"]["regarding"]
        )

    async def main() -> None:
        async with local_server(tmp_path) as local:
            await scenario(local)

    asyncio.run(main())
