"""Replies queued longer than the recovery lease (a slow or throttled contact) are never
handed out a second time: the process holding them renews their claim."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.conftest import start_graph_stub
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.outbound import build_messages
from whatsapp_core.sender import OutboundSender
from whatsapp_core.store import WhatsAppStore

LEASE = 1.0


async def test_replies_queued_past_the_lease_are_not_claimed_again(tmp_path):
    sent: list[str] = []

    async def slow_messages(request: web.Request) -> web.Response:
        payload = await request.json()
        await asyncio.sleep(1.0)  # each send takes a second: the third waits ~2 s
        sent.append(payload["text"]["body"])
        return web.json_response({"messages": [{"id": f"wamid.out{len(sent)}"}]})

    runner, graph_url = await start_graph_stub(slow_messages)
    store = WhatsAppStore(f"sqlite:///{tmp_path / 'claims.db'}", instance_id="holder")
    graph = GraphClient(graph_url, timeout=5)
    sender = OutboundSender(
        store, graph, access_token_for=lambda _: "t", default_phone_number_id="pn"
    )
    sender.start(renew_every_seconds=LEASE / 4)
    try:
        messages = [m for n in range(3) for m in build_messages({"text": f"reply {n}"})]
        await sender.send("16505551234", "pn", "16505551234", messages)
        await asyncio.sleep(2 * LEASE)  # replies 2 and 3 are still queued here
        assert await store.claim_stale_outbound(LEASE) == []
        await asyncio.wait_for(sender.wait_idle(), 10)
        assert sent == ["reply 0", "reply 1", "reply 2"]
    finally:
        await sender.stop()
        await graph.close()
        store.close()
        await runner.cleanup()
