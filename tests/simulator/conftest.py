"""Fixtures for the simulator tests: the simulator in-process and a webhook sink (the "bot").

The sink is a small aiohttp server that records every webhook with its raw bytes and
signature; the simulator runs in-process through aiohttp's test utilities.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from simulator.app import create_app
from simulator.config import SimulatorConfig
from simulator.engine import CloudApiSimulator
from simulator.web_common import SIMULATOR

TOKEN = "TOKEN"
SECRET = "SECRET"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
WABA_ID = "102290129340398"
CONTACT = "16505551234"
VERIFY_TOKEN = "VERIFY"


@dataclass
class Delivery:
    """One webhook POST as the bot received it."""

    raw: bytes
    signature: str | None
    content_type: str

    @property
    def payload(self) -> Any:
        return json.loads(self.raw)

    def signature_valid(self, secret: str = SECRET) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.raw, hashlib.sha256).hexdigest()
        return self.signature is not None and hmac.compare_digest(self.signature, expected)

    def values(self) -> list[dict[str, Any]]:
        return [c["value"] for e in self.payload["entry"] for c in e["changes"]]

    @property
    def statuses(self) -> list[dict[str, Any]]:
        return [s for v in self.values() for s in v.get("statuses", [])]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for v in self.values() for m in v.get("messages", [])]


@dataclass
class WebhookSink:
    """Stands in for the bot's webhook endpoint. ``answers`` is a queue of HTTP statuses to
    answer with (200 once it is empty)."""

    deliveries: list[Delivery] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    url: str = ""

    async def handle_post(self, request: web.Request) -> web.Response:
        self.deliveries.append(
            Delivery(
                await request.read(),
                request.headers.get("X-Hub-Signature-256"),
                request.headers.get("Content-Type", ""),
            )
        )
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status, text="ok" if status == 200 else "nope")

    async def handle_get(self, request: web.Request) -> web.Response:
        if request.query.get("hub.verify_token") == VERIFY_TOKEN:
            return web.Response(text=request.query.get("hub.challenge", ""))
        return web.Response(status=403)

    @property
    def last_messages(self) -> list[dict[str, Any]]:
        """The messages of the last delivery that carried any (status webhooks of earlier
        sends may arrive after an inbound message)."""
        return next((d.messages for d in reversed(self.deliveries) if d.messages), [])

    def statuses(self, wamid: str | None = None) -> list[dict[str, Any]]:
        return [s for d in self.deliveries for s in d.statuses if wamid is None or s["id"] == wamid]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                payloads = [d.payload for d in self.deliveries]
                raise AssertionError(f"timed out; deliveries: {payloads}")
            await asyncio.sleep(0.005)

    async def wait_statuses(
        self, wamid: str, count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        await self.wait_until(lambda: len(self.statuses(wamid)) >= count, timeout)
        return self.statuses(wamid)


@dataclass
class SimHarness:
    """The in-process simulator plus helpers to call it."""

    http: TestClient
    engine: CloudApiSimulator
    sink: WebhookSink
    contact: str = CONTACT
    phone_number_id: str = PHONE_NUMBER_ID
    display_number: str = DISPLAY_NUMBER
    waba_id: str = WABA_ID
    token: str = TOKEN
    secret: str = SECRET
    verify_token: str = VERIFY_TOKEN

    async def graph(
        self, method: str, path: str, *, token: str | None = TOKEN, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, path, headers=headers, **kwargs) as response:
            body = await response.read()
            try:
                return response.status, json.loads(body)
            except ValueError:
                return response.status, body

    async def send(
        self,
        message: dict[str, Any],
        *,
        token: str | None = TOKEN,
        phone_number_id: str = PHONE_NUMBER_ID,
        version: str = "v21.0",
    ) -> tuple[int, Any]:
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": self.contact,
            **message,
        }
        return await self.graph(
            "POST", f"/{version}/{phone_number_id}/messages", token=token, json=body
        )

    async def send_ok(self, message: dict[str, Any]) -> str:
        status, body = await self.send(message)
        assert status == 200, body
        return str(body["messages"][0]["id"])

    async def send_text(self, text: str = "hello") -> str:
        return await self.send_ok({"type": "text", "text": {"body": text}})

    async def control(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, path, json=payload) as response:
            return response.status, await response.json()

    async def inbound(self, **spec: Any) -> dict[str, Any]:
        spec.setdefault("from", self.contact)
        spec.setdefault("name", "Sheena")
        status, body = await self.control("POST", "/_sim/inbound", spec)
        assert status == 200, body
        return dict(body)

    async def advance(self, seconds: float) -> None:
        status, body = await self.control("POST", "/_sim/clock", {"advance_seconds": seconds})
        assert status == 200, body

    async def messages(self, to: str | None = CONTACT) -> list[dict[str, Any]]:
        status, body = await self.control(
            "GET", f"/_sim/messages?to={to}" if to else "/_sim/messages"
        )
        assert status == 200
        return list(body["messages"])

    async def message(self, wamid: str) -> dict[str, Any]:
        return next(m for m in await self.messages(None) if m["wamid"] == wamid)

    async def idle(self, timeout: float = 5.0) -> None:
        await self.sink.wait_until(lambda: self.engine.webhooks.pending == 0, timeout)


def sim_config(sink_url: str, **overrides: Any) -> SimulatorConfig:
    """A config wired to the sink, with no status delay and fast retries."""
    base = SimulatorConfig(
        webhook_url=sink_url,
        app_secret=SECRET,
        access_token=TOKEN,
        waba_id=WABA_ID,
        status_delay_seconds=0.0,
        webhook_retry_base_seconds=0.01,
        webhook_max_attempts=3,
        webhook_timeout_seconds=2.0,
    )
    return replace(base, **overrides)


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()
    app = web.Application()
    app.router.add_post("/webhook", sink.handle_post)
    app.router.add_get("/webhook", sink.handle_get)
    server = TestServer(app)
    await server.start_server()
    sink.url = str(server.make_url("/webhook"))
    yield sink
    await server.close()


@pytest.fixture
async def make_sim(
    sink: WebhookSink,
) -> AsyncIterator[Callable[..., Awaitable[SimHarness]]]:
    """Factory: ``await make_sim(**config_overrides)`` starts a simulator wired to ``sink``."""
    clients: list[TestClient] = []

    async def start(**overrides: Any) -> SimHarness:
        app = create_app(sim_config(sink.url, **overrides))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return SimHarness(client, app[SIMULATOR], sink)

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def sim(make_sim: Callable[..., Awaitable[SimHarness]]) -> SimHarness:
    return await make_sim()
