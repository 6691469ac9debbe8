"""In-process harness of the reliability tests: the WhatsApp channel on a real Sanic server
on loopback, with a recording turn callback instead of a Rasa agent (fast, no model)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from sanic import Sanic

from connectors.whatsapp_connector import WhatsAppInput
from whatsapp_core.signature import sign

SECRET = "reliability-app-secret"
PHONE_NUMBER_ID = "106540352242922"
WEBHOOK = "/webhooks/whatsapp/webhook"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def credentials(tmp_path, **overrides) -> dict:
    values = {
        "verify_token": "reliability-verify",
        "app_secret": SECRET,
        "access_token": "reliability-token",
        "phone_number_id": PHONE_NUMBER_ID,
        "api_base_url": "http://127.0.0.1:9",  # nothing listens: replies are not the point here
        "store_url": f"sqlite:///{tmp_path / 'channel.db'}",
        "mark_as_read": False,
        "status_spool_dir": str(tmp_path / "spool"),
    }
    values.update(overrides)
    return values


def text_message(wamid: str, sender: str, text: str, ts: int) -> dict:
    return {"from": sender, "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text}}


def envelope(messages: list[dict], phone_number_id: str = PHONE_NUMBER_ID) -> bytes:
    senders = sorted({m["from"] for m in messages})
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "C"}, "wa_id": s} for s in senders],
        "messages": messages,
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()


@dataclass
class Turn:
    message_id: str
    conversation_id: str
    text: str
    started: float
    finished: float = 0.0


@dataclass
class Server:
    url: str
    channel: WhatsAppInput
    session: aiohttp.ClientSession
    turns: list[Turn] = field(default_factory=list)
    _server: object = None

    async def post(self, body: bytes, signature: str | None = "sign", **headers) -> int:
        if signature == "sign":
            signature = sign(body, SECRET)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        headers.setdefault("Content-Type", "application/json")
        async with self.session.post(f"{self.url}{WEBHOOK}", data=body, headers=headers) as answer:
            await answer.read()
            return answer.status

    async def settle(self, expected: int, timeout: float = 30.0) -> None:
        """Wait until ``expected`` turns finished and nothing is queued."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if sum(1 for t in self.turns if t.finished) >= expected:
                runtime = self.channel._runtime
                if runtime is not None:
                    await asyncio.wait_for(runtime.receiver.wait_idle(), deadline - loop.time())
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{len(self.turns)} turns after {timeout}s, expected {expected}")

    async def stop(self) -> None:
        await self.session.close()
        await self.channel.stop()
        self._server.close()
        await self._server.wait_closed()


async def start_server(
    creds: dict, turn_cost: Callable[[Turn], Awaitable[None]] | None = None
) -> Server:
    Sanic.test_mode = True
    app = Sanic(f"reliability_{uuid.uuid4().hex[:8]}")
    channel = WhatsAppInput.from_credentials(creds)
    turns: list[Turn] = []
    loop = asyncio.get_running_loop()

    async def on_new_message(message) -> None:
        turn = Turn(message.message_id, message.sender_id, message.text, loop.time())
        turns.append(turn)
        if turn_cost is not None:
            await turn_cost(turn)
        turn.finished = loop.time()

    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/whatsapp")
    port = free_port()
    server = await app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
    )
    await server.startup()
    await server.start_serving()
    running = Server(f"http://127.0.0.1:{port}", channel, aiohttp.ClientSession(), turns)
    running._server = server
    # the runtime starts on the first request; start it now so recovery has run
    await running.session.get(f"{running.url}/webhooks/whatsapp/")
    await channel.runtime(app, on_new_message)
    return running
