"""Read receipts: one per burst of a contact's messages (marking a message read marks the
earlier ones read too), each when the bot starts on the burst."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from tests.conftest import start_graph_stub
from tests.http.conftest import credentials, start_server, stop_server
from tests.http.test_turn_order_http import gated, wait_for
from tests.http.test_webhook_http import text_message, webhook


@contextlib.asynccontextmanager
async def channel_with_graph(tmp_path, gate: asyncio.Event, held: str):
    """A channel marking messages read against a Graph stub that records the receipts;
    the turn of message ``held`` waits for ``gate``. Yields ``(channel, receipts)``."""
    receipts: list[dict] = []

    async def messages(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("status") == "read":
            receipts.append(body)
            return web.json_response({"success": True})
        return web.json_response({"messages": [{"id": f"wamid.out{len(receipts)}"}]})

    runner, base_url = await start_graph_stub(messages)
    creds = credentials(tmp_path, api_base_url=base_url, mark_as_read=True)
    channel, server = await start_server(creds, gated(gate, held))
    try:
        yield channel, receipts
    finally:
        gate.set()
        await stop_server(channel, server)
        await runner.cleanup()


async def test_a_burst_waiting_for_its_turns_gets_one_receipt_for_its_newest_message(tmp_path):
    gate = asyncio.Event()
    async with channel_with_graph(tmp_path, gate, "wamid.m1") as (channel, receipts):
        await channel.post(webhook(text_message("wamid.m1", "one", ts=100)))
        await wait_for(lambda: len(channel.turns) == 1 and len(receipts) == 1)
        for n in (2, 3, 4):  # the contact writes on while the bot is busy with m1
            await channel.post(webhook(text_message(f"wamid.m{n}", str(n), ts=100 + n)))
        gate.set()
        await wait_for(lambda: len(channel.turns) == 4)
        await channel.settle()
        await channel.post(webhook(text_message("wamid.m5", "five", ts=200)))
        await wait_for(lambda: len(channel.turns) == 5)
        await channel.settle()
        await asyncio.sleep(0.2)
        assert [r["message_id"] for r in receipts] == ["wamid.m1", "wamid.m4", "wamid.m5"]
        assert all(r["typing_indicator"] == {"type": "text"} for r in receipts)
        assert [turn.message_id for turn in channel.turns] == [f"wamid.m{n}" for n in range(1, 6)]


async def test_the_newest_by_whatsapp_time_is_marked_when_webhooks_arrive_out_of_order(tmp_path):
    gate = asyncio.Event()
    async with channel_with_graph(tmp_path, gate, "wamid.m1") as (channel, receipts):
        await channel.post(webhook(text_message("wamid.m1", "one", ts=100)))
        await wait_for(lambda: len(receipts) == 1)
        await channel.post(webhook(text_message("wamid.m3", "three", ts=103)))
        await channel.post(webhook(text_message("wamid.m2", "two", ts=102)))
        gate.set()
        await wait_for(lambda: len(channel.turns) == 3)
        await channel.settle()
        await asyncio.sleep(0.2)
        assert [r["message_id"] for r in receipts] == ["wamid.m1", "wamid.m3"]
