"""A real Sanic server on loopback with the WhatsApp channel, for HTTP-level tests."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from sanic import Sanic

from connectors.whatsapp_connector import WhatsAppInput
from whatsapp_core.signature import sign

SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
PHONE_NUMBER_ID = "106540352242922"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ChannelServer:
    """The running server, the channel and the turns it produced."""

    url: str
    channel: WhatsAppInput
    session: aiohttp.ClientSession
    turns: list = field(default_factory=list)

    async def post(self, body: bytes, signature: str | None = "sign", **headers) -> tuple[int, str]:
        if signature == "sign":
            signature = sign(body, SECRET)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        headers.setdefault("Content-Type", "application/json")
        async with self.session.post(
            f"{self.url}/webhooks/whatsapp/webhook", data=body, headers=headers
        ) as response:
            return response.status, await response.text()

    async def get(self, path: str, **params) -> tuple[int, str]:
        async with self.session.get(f"{self.url}{path}", params=params) as response:
            return response.status, await response.text()

    async def settle(self) -> None:
        """Wait until every accepted message had its turn."""
        runtime = self.channel._runtime
        if runtime is not None:
            await runtime.receiver.wait_idle()


def credentials(tmp_path, **overrides) -> dict:
    values = {
        "verify_token": VERIFY_TOKEN,
        "app_secret": SECRET,
        "access_token": "test-access-token",
        "phone_number_id": int(PHONE_NUMBER_ID),  # YAML gives digits-only ids as ints
        "api_base_url": "http://127.0.0.1:9",
        "store_url": f"sqlite:///{tmp_path / 'channel.db'}",
        "mark_as_read": False,
        "album_window_seconds": 0,
        "status_spool_dir": str(tmp_path / "spool"),
    }
    values.update(overrides)
    return values


async def start_server(
    creds: dict, on_message: Callable | None = None
) -> tuple[ChannelServer, object]:
    Sanic.test_mode = True
    app = Sanic(f"whatsapp_test_{uuid.uuid4().hex[:8]}")
    channel = WhatsAppInput.from_credentials(creds)
    turns: list = []

    async def on_new_message(message) -> None:
        turns.append(message)
        if on_message is not None:
            await on_message(message)

    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/whatsapp")
    port = free_port()
    server = await app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
    )
    await server.startup()
    await server.start_serving()
    session = aiohttp.ClientSession()
    return ChannelServer(f"http://127.0.0.1:{port}", channel, session, turns), server


async def stop_server(channel_server: ChannelServer, server) -> None:
    await channel_server.session.close()
    await channel_server.channel.stop()
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0)


@pytest.fixture
async def channel_server(tmp_path):
    running, server = await start_server(credentials(tmp_path))
    yield running
    await stop_server(running, server)
