"""The embedded API server in this process, for tests that make thousands of requests (a
property over every resourceVersion of a history) or need its clocks shortened: the real
`APIServer` application behind aiohttp's test server, on loopback HTTP with its admin token."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kvd.local.apiserver.server import APIServer

Event = dict[str, Any]
WAIT = 20.0  # seconds a watch may take to deliver what a test expects before it fails


@contextlib.asynccontextmanager
async def local_server(data_dir: Path, *, history: int = 100_000) -> AsyncIterator[Local]:
    api = APIServer(data_dir, history=history)
    client = TestClient(
        TestServer(api.app()), headers={"Authorization": f"Bearer {api.tokens.admin_token}"}
    )
    await client.start_server()
    try:
        yield Local(api, client)
    finally:
        await client.close()


class Local:
    def __init__(self, api: APIServer, client: TestClient[Any, Any]) -> None:
        self.api = api
        self.client = client

    @property
    def revision(self) -> int:
        return self.api.store.revision

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.client.request(method, path, json=body) as response:
            return response.status, await response.json()

    async def write(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, answer = await self.call(method, path, body)
        assert status in (200, 201), (method, path, status, answer)
        return dict(answer)

    async def watch(
        self, path: str, query: Mapping[str, str], *, until: Callable[[Event], bool]
    ) -> list[Event]:
        """The events of one watch until `until` accepts one (included); fails after WAIT."""
        events: list[Event] = []
        async with asyncio.timeout(WAIT):
            async with self.client.get(path, params={"watch": "true", **query}) as response:
                assert response.status == 200, await response.text()
                async for line in response.content:
                    events.append(json.loads(line))
                    if until(events[-1]):
                        return events
        raise AssertionError(f"the watch ended without the awaited event: {events}")
