"""Attacks on the webhook: replays, secrets and phone numbers in logs, oversized input."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import sqlalchemy as sa

from tests.http.conftest import SECRET, VERIFY_TOKEN, credentials, start_server, stop_server
from tests.http.test_webhook_http import text_message, webhook
from whatsapp_core.outbound import build_messages
from whatsapp_core.schema import inbox
from whatsapp_core.store import create_engine

CONTACT = "16505551234"
ACCESS_TOKEN = "test-access-token"


async def test_replay_six_days_later_after_restart_gives_no_turn(tmp_path):
    creds = credentials(tmp_path)
    body = webhook(text_message("wamid.replayed", "pay me"))
    first, server = await start_server(creds)
    assert (await first.post(body))[0] == 200
    await first.settle()
    await stop_server(first, server)

    engine = create_engine(creds["store_url"])
    with engine.begin() as connection:
        connection.execute(inbox.update().values(received_at=time.time() - 6 * 86400))
    second, server2 = await start_server(creds)
    try:
        await second.channel.runtime(None, lambda _m: None)
        assert await second.channel._runtime.store.prune(7 * 86400) == 0
        assert (await second.post(body))[0] == 200
        await second.settle()
        assert second.turns == []
    finally:
        await stop_server(second, server2)


async def test_dedup_records_are_pruned_only_after_the_retention(tmp_path):
    creds = credentials(tmp_path, dedup_retention_days=7)
    running, server = await start_server(creds)
    try:
        await running.post(webhook(text_message("wamid.old", "x")))
        await running.settle()
        store = running.channel._runtime.store
        engine = create_engine(creds["store_url"])
        with engine.begin() as connection:
            connection.execute(inbox.update().values(received_at=time.time() - 8 * 86400))
        # the channel's own sweeper may have pruned it first: either way it is gone
        assert await store.prune(7 * 86400) in (0, 1)
        with engine.begin() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() == 0
    finally:
        await stop_server(running, server)


async def test_logs_of_a_whole_exchange_hold_no_secret_and_no_full_phone_number(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    running, server = await start_server(credentials(tmp_path, agent_token="agent-secret-token"))
    try:
        # a contact message whose reply fails (Graph API unreachable), a failed status,
        # a forged webhook, a bad body and the verification handshake
        await running.post(webhook(text_message("wamid.log1", "hello")))
        await running.channel._runtime.sender.send(
            CONTACT, None, CONTACT,
            build_messages({"text": "reply"}),
        )
        status = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "metadata": {"phone_number_id": "106540352242922"},
                "statuses": [{"id": "wamid.out", "status": "failed", "recipient_id": CONTACT,
                              "errors": [{"code": 131026, "title": "Message undeliverable"}]}],
            }}]}],
        }
        await running.post(json.dumps(status).encode())
        await running.post(webhook(text_message("wamid.log2", "x")), signature="sha256=" + "0" * 64)
        await running.post(b"{not json")
        await running.get("/webhooks/whatsapp/webhook", **{"hub.mode": "subscribe", "hub.verify_token": "guess"})
        await running.settle()
        await asyncio.wait_for(running.channel._runtime.sender.wait_idle(), timeout=60)
    finally:
        await stop_server(running, server)
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "failed" in logs and "131026" in logs  # the exchange was logged...
    for secret in (SECRET, ACCESS_TOKEN, VERIFY_TOKEN, "agent-secret-token"):
        assert secret not in logs
    assert CONTACT not in logs  # ...with phone numbers masked
    assert "***1234" in logs
