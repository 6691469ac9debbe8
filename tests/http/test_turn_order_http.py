"""A contact's turns follow WhatsApp's order, whichever instance accepted each message,
and at most ``max_concurrent_turns`` turns run at once."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from tests.http.conftest import credentials, start_server, stop_server
from tests.http.test_webhook_http import text_message, webhook
from whatsapp_core.schema import inbox
from whatsapp_core.store import InboxItem, WhatsAppStore


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def gated(gate: asyncio.Event, on: str):
    """A turn callback that blocks the turn of message ``on`` until ``gate`` is set."""

    async def on_message(message) -> None:
        if message.message_id == on:
            await gate.wait()

    return on_message


async def test_a_later_message_on_another_instance_waits_for_the_earlier_turn(tmp_path):
    gate = asyncio.Event()
    creds = credentials(tmp_path)
    first, first_server = await start_server(creds, gated(gate, "wamid.m1"))
    second, second_server = await start_server(creds)
    try:
        assert (await first.post(webhook(text_message("wamid.m1", "one", ts=100))))[0] == 200
        await wait_for(lambda: len(first.turns) == 1)  # m1's turn runs (held by the gate)
        assert (await second.post(webhook(text_message("wamid.m2", "two", ts=101))))[0] == 200
        await asyncio.sleep(0.5)
        assert second.turns == []  # m2 waits: m1 is held by a live instance
        gate.set()
        await wait_for(lambda: len(second.turns) == 1)
        assert second.turns[0].message_id == "wamid.m2"
    finally:
        gate.set()
        await stop_server(first, first_server)
        await stop_server(second, second_server)


async def test_an_earlier_message_of_a_dead_instance_is_taken_over_and_runs_first(tmp_path):
    creds = credentials(tmp_path, recovery_lease_seconds=1)
    dead = WhatsAppStore(creds["store_url"], instance_id="dead-instance")
    earlier = InboxItem("wamid.m1", "16505551234", None, "16505551234", 100, True, "one", {})
    await dead.accept([earlier])
    dead.close()
    second, second_server = await start_server(creds)
    try:
        assert (await second.post(webhook(text_message("wamid.m2", "two", ts=101))))[0] == 200
        await wait_for(lambda: len(second.turns) == 2)
        assert [turn.message_id for turn in second.turns] == ["wamid.m1", "wamid.m2"]
        await second.settle()
        engine = sa.create_engine(creds["store_url"])
        with engine.connect() as connection:
            rows = connection.execute(sa.select(inbox.c.message_id, inbox.c.state)).fetchall()
        engine.dispose()
        assert sorted(rows) == [("wamid.m1", "done"), ("wamid.m2", "done")]
    finally:
        await stop_server(second, second_server)


async def test_reordered_webhooks_on_one_instance_run_in_whatsapp_order(tmp_path):
    gate = asyncio.Event()
    channel, server = await start_server(credentials(tmp_path), gated(gate, "wamid.m0"))
    try:
        await channel.post(webhook(text_message("wamid.m0", "zero", ts=50)))
        await wait_for(lambda: len(channel.turns) == 1)
        await channel.post(webhook(text_message("wamid.m2", "two", ts=102)))
        await channel.post(webhook(text_message("wamid.m1", "one", ts=101)))
        gate.set()
        await wait_for(lambda: len(channel.turns) == 3)
        await channel.settle()
        assert [turn.message_id for turn in channel.turns] == ["wamid.m0", "wamid.m1", "wamid.m2"]
    finally:
        gate.set()
        await stop_server(channel, server)


async def test_turns_running_at_once_are_bounded(tmp_path):
    running = 0
    peak = 0

    async def on_message(_message) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    channel, server = await start_server(
        credentials(tmp_path, max_concurrent_turns=2), on_message
    )
    try:
        body = webhook(*(text_message(f"wamid.c{n}", "hi", sender=f"1650555{n:04d}") for n in range(8)))
        assert (await channel.post(body))[0] == 200
        await wait_for(lambda: len(channel.turns) == 8)
        await channel.settle()
        assert peak == 2
    finally:
        await stop_server(channel, server)
