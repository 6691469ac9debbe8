"""The ingress process (``ingress_port``): the webhook on its own port and process, turns
in the Rasa process, supervised (restarted when it dies, stopped with the channel)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import start_graph_stub
from tests.http.conftest import (
    PHONE_NUMBER_ID,
    SECRET,
    VERIFY_TOKEN,
    credentials,
    free_port,
    start_server,
    stop_server,
)
from tests.http.test_webhook_http import text_message, webhook
from whatsapp_core.signature import sign
from whatsapp_core.store import OutboxState

WEBHOOK = "/webhooks/whatsapp/webhook"


async def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def post(port: int, body: bytes, signature: str | None = None) -> tuple[int, str]:
    headers = {"X-Hub-Signature-256": signature or sign(body, SECRET)}
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{port}{WEBHOOK}", data=body, headers=headers
    ) as response:
        return response.status, await response.text()


@pytest.fixture
async def with_ingress(tmp_path):
    port = free_port()
    channel, server = await start_server(
        credentials(tmp_path, ingress_port=port, ingress_host="127.0.0.1")
    )
    await channel.post(b"{}", signature=None)  # a refused POST starts the channel
    runtime = channel.channel._runtime
    await asyncio.wait_for(runtime.ingress.ready.wait(), 30)
    yield channel, runtime, port
    await stop_server(channel, server)


async def test_a_message_posted_to_the_ingress_port_gets_its_turn_in_the_rasa_process(with_ingress):
    channel, runtime, port = with_ingress
    assert runtime.ingress.pid != os.getpid()
    status, _ = await post(port, webhook(text_message("wamid.i1", "hello")))
    assert status == 200
    await wait_for(lambda: len(channel.turns) == 1)
    turn = channel.turns[0]
    assert (turn.message_id, turn.text, turn.sender_id) == ("wamid.i1", "hello", "16505551234")
    assert (await post(port, webhook(text_message("wamid.i1", "hello"))))[0] == 200
    await asyncio.sleep(0.3)
    assert len(channel.turns) == 1  # dedup across the two processes' paths
    assert (await channel.post(webhook(text_message("wamid.i1", "hello"))))[0] == 200
    await channel.settle()
    assert len(channel.turns) == 1


async def test_the_ingress_port_refuses_what_rasas_port_refuses(with_ingress):
    channel, _runtime, port = with_ingress
    body = webhook(text_message("wamid.i2", "hi"))
    assert (await post(port, body, signature="sha256=" + "0" * 64))[0] == 403
    assert (await post(port, b"{not json"))[0] == 400
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}{WEBHOOK}",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
    ) as response:
        assert (response.status, await response.text()) == (200, "42")
    await asyncio.sleep(0.3)
    assert channel.turns == []


async def test_statuses_posted_to_the_ingress_port_move_the_outbox(with_ingress):
    _channel, runtime, port = with_ingress
    [queued] = await runtime.store.enqueue_outbound(
        "16505551234", None, "16505551234", [("text", {"text": {"body": "hi"}})]
    )
    await runtime.store.finish_outbound(
        queued.id, state=OutboxState.SENT, wamid="wamid.out1", attempts=1
    )
    status = {
        "id": "wamid.out1",
        "status": "delivered",
        "timestamp": "1749416400",
        "recipient_id": "16505551234",
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "statuses": [status],
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()
    assert (await post(port, body))[0] == 200  # spooled, then applied in the background
    deadline = time.monotonic() + 10
    while (await runtime.store.outbound_for("16505551234"))[0].state != "delivered":
        assert time.monotonic() < deadline, "status never applied"
        await asyncio.sleep(0.05)


async def test_a_killed_ingress_process_is_restarted(with_ingress):
    channel, runtime, port = with_ingress
    first = runtime.ingress.pid
    os.kill(first, signal.SIGKILL)
    await wait_for(lambda: runtime.ingress.pid != first and runtime.ingress.ready.is_set())
    assert (await post(port, webhook(text_message("wamid.i3", "again"))))[0] == 200
    await wait_for(lambda: len(channel.turns) == 1)


async def test_the_link_is_private_and_the_process_stops_with_the_channel(tmp_path):
    port = free_port()
    channel, server = await start_server(
        credentials(tmp_path, ingress_port=port, ingress_host="127.0.0.1")
    )
    await channel.post(b"{}", signature=None)
    runtime = channel.channel._runtime
    await asyncio.wait_for(runtime.ingress.ready.wait(), 30)
    link_dir = Path(runtime.ingress._settings["link"]).parent
    assert stat.S_IMODE(link_dir.stat().st_mode) == 0o700
    pid = runtime.ingress.pid
    await stop_server(channel, server)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not link_dir.exists()


async def test_replies_are_sent_by_the_ingress_process_and_recorded(tmp_path):
    from aiohttp import web

    received: list[dict] = []

    async def messages(request: web.Request) -> web.Response:
        payload = await request.json()
        received.append(payload)
        if payload.get("status") == "read":
            return web.json_response({"success": True})
        return web.json_response({"messages": [{"id": f"wamid.reply{len(received)}"}]})

    runner, graph_url = await start_graph_stub(messages)

    async def reply(message) -> None:
        await message.output_channel.send_text_message(message.sender_id, f"you said {message.text}")

    port = free_port()
    creds = credentials(
        tmp_path,
        ingress_port=port,
        ingress_host="127.0.0.1",
        api_base_url=graph_url,
        mark_as_read=True,
    )
    channel, server = await start_server(creds, reply)
    try:
        await channel.post(b"{}", signature=None)
        runtime = channel.channel._runtime
        await asyncio.wait_for(runtime.ingress.ready.wait(), 30)
        sent_here = []
        original = runtime.graph.send_message

        async def counting(*args, **kwargs):
            sent_here.append(args)
            return await original(*args, **kwargs)

        runtime.graph.send_message = counting
        now = int(time.time())
        assert (await post(port, webhook(text_message("wamid.in1", "hi", ts=now))))[0] == 200
        await wait_for(lambda: any(p.get("type") == "text" for p in received))
        texts = [p["text"]["body"] for p in received if p.get("type") == "text"]
        assert texts == ["you said hi"]
        assert any(p.get("status") == "read" for p in received)  # the read receipt too
        assert sent_here == []  # the Rasa process made no Graph call
        deadline = time.monotonic() + 10
        while (await runtime.store.outbound_for("16505551234"))[0].wamid is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        [record] = await runtime.store.outbound_for("16505551234")
        assert (record.state, record.wamid) == ("sent", "wamid.reply2")
    finally:
        await stop_server(channel, server)
        await runner.cleanup()
