"""Status webhooks are spooled, answered, then applied; a spool left by a crash is replayed."""

from __future__ import annotations

import asyncio
import json
import time

from tests.http.conftest import PHONE_NUMBER_ID, credentials, start_server, stop_server
from whatsapp_core import acceptor
from whatsapp_core.status_spool import StatusSpool
from whatsapp_core.store import OutboxState, WhatsAppStore

CONTACT = "16505551234"


def status_webhook(wamid: str, state: str) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "statuses": [
            {"id": wamid, "status": state, "timestamp": "1749416400", "recipient_id": CONTACT}
        ],
    }
    change = {"field": "messages", "value": value}
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    ).encode()


async def sent_message(store_url: str, wamid: str) -> None:
    store = WhatsAppStore(store_url, instance_id="setup")
    [queued] = await store.enqueue_outbound(CONTACT, None, CONTACT, [("text", {"text": {}})])
    await store.finish_outbound(queued.id, state=OutboxState.SENT, wamid=wamid, attempts=1)
    store.close()


async def state_of(channel) -> str:
    [record] = await channel.channel._runtime.store.outbound_for(CONTACT)
    return record.state


async def test_a_status_webhook_is_answered_and_then_applied(tmp_path):
    creds = credentials(tmp_path)
    await sent_message(creds["store_url"], "wamid.s1")
    channel, server = await start_server(creds)
    try:
        await channel.post(b"{}", signature=None)  # starts the channel
        assert (await channel.post(status_webhook("wamid.s1", "delivered")))[0] == 200
        await channel.settle()
        assert await state_of(channel) == "delivered"
        assert (await channel.post(status_webhook("wamid.s1", "read")))[0] == 200
        await channel.settle()
        assert await state_of(channel) == "read"
    finally:
        await stop_server(channel, server)


async def test_statuses_spooled_before_a_crash_are_applied_at_the_next_start(tmp_path):
    creds = credentials(tmp_path)
    await sent_message(creds["store_url"], "wamid.s2")
    crashed = StatusSpool(creds["status_spool_dir"])  # what a crashed process left behind
    crashed.open()
    crashed.append(status_webhook("wamid.s2", "delivered"))
    crashed.close()
    channel, server = await start_server(creds)
    try:
        await channel.post(b"{}", signature=None)
        deadline = time.monotonic() + 10
        while await state_of(channel) != "delivered":
            assert time.monotonic() < deadline, "spooled status never applied"
            await asyncio.sleep(0.05)
    finally:
        await stop_server(channel, server)
    assert StatusSpool(creds["status_spool_dir"]).open() == []  # applied: nothing to replay


async def test_a_status_webhook_that_cannot_be_recorded_does_not_block_the_spool(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr("whatsapp_core.acceptor.SPOOL_ATTEMPTS", 2)
    creds = credentials(tmp_path)
    await sent_message(creds["store_url"], "wamid.good")
    channel, server = await start_server(creds)
    try:
        await channel.post(b"{}", signature=None)
        store = channel.channel._runtime.store
        apply = store.apply_statuses

        async def poisoned(changes, **options):
            if any(change.wamid == "wamid.poison" for change in changes):
                raise ValueError("cannot be recorded")
            return await apply(changes, **options)

        monkeypatch.setattr(store, "apply_statuses", poisoned)
        assert (await channel.post(status_webhook("wamid.poison", "delivered")))[0] == 200
        assert (await channel.post(status_webhook("wamid.good", "delivered")))[0] == 200
        await asyncio.wait_for(channel.settle(), 15)
        assert await state_of(channel) == "delivered"
        assert "dropped, they cannot be recorded: [('wamid.poison', " in caplog.text
    finally:
        await stop_server(channel, server)


async def test_statuses_arriving_together_are_applied_in_one_transaction(
    tmp_path, monkeypatch
):
    """A few status webhooks a moment apart share a transaction (SPOOL_GATHER_SECONDS):
    each one alone took SQLite's write lock that the Rasa process's turns wait for."""
    monkeypatch.setattr(acceptor, "SPOOL_GATHER_SECONDS", 0.5)  # however slow the machine
    creds = credentials(tmp_path)
    wamids = [f"wamid.g{i}" for i in range(3)]
    for wamid in wamids:
        await sent_message(creds["store_url"], wamid)
    channel, server = await start_server(creds)
    try:
        await channel.post(b"{}", signature=None)  # starts the channel
        store = channel.channel._runtime.store
        batches: list[int] = []
        apply_statuses = store.apply_statuses

        async def counting(updates, **kwargs):
            batches.append(len(updates))
            return await apply_statuses(updates, **kwargs)

        store.apply_statuses = counting
        for wamid in wamids:
            assert (await channel.post(status_webhook(wamid, "delivered")))[0] == 200
        await channel.settle()
        assert batches == [3]
        assert {r.state for r in await store.outbound_for(CONTACT)} == {"delivered"}
    finally:
        await stop_server(channel, server)
