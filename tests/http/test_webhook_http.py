"""The webhook endpoint over real HTTP: handshake, signature, bad input, the corpus."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import sqlalchemy as sa

from tests.conftest import corpus_body, corpus_files
from tests.http.conftest import (
    PHONE_NUMBER_ID,
    SECRET,
    VERIFY_TOKEN,
    credentials,
    start_server,
    stop_server,
)
from tests.unit.test_normalize import EXPECTED_TEXTS
from whatsapp_core.schema import template_statuses
from whatsapp_core.signature import sign

WEBHOOK = "/webhooks/whatsapp/webhook"


def for_our_number(body: bytes) -> bytes:
    """Samples use several (placeholder) business numbers: address them to ours."""
    return re.sub(rb'"phone_number_id":\s*"[^"]*"', f'"phone_number_id": "{PHONE_NUMBER_ID}"'.encode(), body)


def text_message(wamid: str, text: str, sender: str = "16505551234", ts: int = 1749416383) -> dict:
    return {"from": sender, "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text}}


def webhook(*messages: dict, phone_number_id: str = PHONE_NUMBER_ID) -> bytes:
    senders = sorted({m["from"] for m in messages})
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Contact"}, "wa_id": s} for s in senders],
        "messages": list(messages),
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()


# ---------------------------------------------------------------- handshake
async def test_handshake_answers_the_challenge_as_plain_text(channel_server):
    status, body = await channel_server.get(
        WEBHOOK, **{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    )
    assert (status, body) == (200, "1158201444")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
        {},
    ],
)
async def test_handshake_refused_with_403(channel_server, params):
    status, body = await channel_server.get(WEBHOOK, **params)
    assert status == 403 and "1" not in body


async def test_health(channel_server):
    status, body = await channel_server.get("/webhooks/whatsapp/")
    assert status == 200 and json.loads(body) == {"status": "ok"}


# ---------------------------------------------------------------- signature
@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, "sha256=abc", "sha1=" + "0" * 40, sign(b"other", SECRET)],
)
async def test_bad_signature_is_403_and_nothing_processed(channel_server, signature):
    status, _ = await channel_server.post(webhook(text_message("wamid.sig", "hi")), signature=signature)
    await channel_server.settle()
    assert status == 403
    assert channel_server.turns == []


async def test_signature_over_reserialised_json_is_refused(channel_server):
    body = webhook(text_message("wamid.reser", "hi"))
    reserialised = json.dumps(json.loads(body), indent=2).encode()
    status, _ = await channel_server.post(reserialised, signature=sign(body, SECRET))
    assert status == 403


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"", 400),
        (b'{"object": "page", "entry": []}', 400),
        (b'{"object": "whatsapp_business_account", "entry": "x"}', 400),
        (b"[" * 50000 + b"]" * 50000, 400),
    ],
)
async def test_bad_bodies_get_a_clear_4xx(channel_server, body, status):
    assert (await channel_server.post(body))[0] == status


async def test_body_over_4_mb_is_413(channel_server):
    body = b'{"object": "whatsapp_business_account", "entry": [], "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    assert (await channel_server.post(body))[0] == 413


# ---------------------------------------------------------------- the corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
async def test_every_corpus_sample_is_handled(channel_server, path):
    status, _ = await channel_server.post(for_our_number(corpus_body(path.name)))
    await channel_server.settle()
    assert status == 200
    assert [turn.text for turn in channel_server.turns] == EXPECTED_TEXTS[path.name]
    for turn in channel_server.turns:
        assert turn.input_channel == "whatsapp"
        assert turn.message_id == turn.metadata["whatsapp"]["message_id"]
        assert turn.output_channel.name() == "whatsapp"


async def test_user_message_fields(channel_server):
    await channel_server.post(corpus_body("text_ctwa_ad_referral.json"))
    await channel_server.settle()
    (turn,) = channel_server.turns
    assert turn.sender_id == "16505551234"
    assert turn.message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA="
    assert turn.metadata["whatsapp"]["referral"]["entry_point"] == "ad"
    assert turn.metadata["whatsapp"]["profile_name"] == "Sheena Nelson"


# ------------------------------------------------------ batching, order, dedup
async def test_batched_post_gives_one_turn_per_message_in_timestamp_order(channel_server):
    body = webhook(
        text_message("wamid.3", "third", ts=103),
        text_message("wamid.1", "first", ts=101),
        text_message("wamid.other", "other contact", sender="393331234567", ts=102),
        text_message("wamid.2", "second", ts=102),
    )
    assert (await channel_server.post(body))[0] == 200
    await channel_server.settle()
    ours = [t.text for t in channel_server.turns if t.sender_id == "16505551234"]
    assert ours == ["first", "second", "third"]
    assert len(channel_server.turns) == 4


async def test_redelivered_wamid_never_gives_a_second_turn(channel_server):
    body = webhook(text_message("wamid.dup", "hello"))
    for _ in range(3):
        assert (await channel_server.post(body))[0] == 200
    await asyncio.gather(*(channel_server.post(body) for _ in range(10)))
    await channel_server.settle()
    assert [t.text for t in channel_server.turns] == ["hello"]


async def test_dedup_holds_across_a_restart_and_a_second_instance(tmp_path):
    creds = credentials(tmp_path)
    body = webhook(text_message("wamid.restart", "once"))
    first, server = await start_server(creds)
    assert (await first.post(body))[0] == 200
    await first.settle()
    await stop_server(first, server)
    second, server2 = await start_server(creds)
    third, server3 = await start_server(creds)
    try:
        assert (await second.post(body))[0] == 200
        assert (await third.post(body))[0] == 200
        await second.settle()
        await third.settle()
        assert len(first.turns) == 1 and second.turns == [] and third.turns == []
    finally:
        await stop_server(second, server2)
        await stop_server(third, server3)


async def test_one_contacts_slow_turn_does_not_delay_another_contacts_ack(tmp_path):
    release = asyncio.Event()

    async def slow_for_one(message) -> None:
        if message.sender_id == "111":
            await release.wait()

    running, server = await start_server(credentials(tmp_path), on_message=slow_for_one)
    try:
        await running.post(webhook(text_message("wamid.slow", "slow", sender="111")))
        status, _ = await asyncio.wait_for(
            running.post(webhook(text_message("wamid.fast", "fast", sender="222"))), timeout=2
        )
        assert status == 200
        for _ in range(100):
            if any(t.sender_id == "222" for t in running.turns):
                break
            await asyncio.sleep(0.01)
        assert any(t.sender_id == "222" for t in running.turns)
        release.set()
        await running.settle()
    finally:
        release.set()
        await stop_server(running, server)


async def test_unserved_phone_number_is_acknowledged_without_a_turn(channel_server, caplog):
    body = webhook(text_message("wamid.elsewhere", "hi"), phone_number_id="999999")
    assert (await channel_server.post(body))[0] == 200
    assert (await channel_server.post(body.replace(b"elsewhere", b"elsewhere2")))[0] == 200
    await channel_server.settle()
    assert channel_server.turns == []
    assert caplog.text.count("does not serve") == 1


async def test_accepted_message_survives_a_crash_before_its_turn(tmp_path):
    """Kill the turn right after the ack; a new server takes the message over once."""
    creds = credentials(tmp_path, recovery_lease_seconds=0.2)
    never = asyncio.Event()

    async def crash(_message) -> None:
        await never.wait()

    first, server = await start_server(creds, on_message=crash)
    assert (await first.post(webhook(text_message("wamid.crash", "survive me"))))[0] == 200
    await asyncio.sleep(0.05)
    # Simulate kill -9: drop the runtime without marking anything done.
    await stop_server(first, server)
    await asyncio.sleep(0.3)
    second, server2 = await start_server(creds)
    try:
        await second.get("/webhooks/whatsapp/")
        await second.post(webhook(text_message("wamid.after", "later")))
        for _ in range(100):
            if len(second.turns) == 2:
                break
            await asyncio.sleep(0.02)
        await second.settle()
        assert [t.text for t in second.turns] == ["survive me", "later"]
    finally:
        await stop_server(second, server2)


async def test_reply_to_a_numbered_menu_becomes_the_option_payload(channel_server):
    await channel_server.post(webhook(text_message("wamid.m0", "hi")))
    await channel_server.settle()
    store = channel_server.channel._runtime.store
    options = [
        {"number": 1, "title": "Track a very long order title", "payload": '/track{"n": 1}'},
        {"number": 2, "title": "Talk to someone about billing", "payload": "/request_human"},
    ]
    await store.save_menu("16505551234", options)
    await channel_server.post(webhook(text_message("wamid.m1", "2")))
    await channel_server.post(webhook(text_message("wamid.m2", "2")))
    await channel_server.settle()
    assert [t.text for t in channel_server.turns] == ["hi", "/request_human", "2"]


async def test_template_status_webhooks_are_recorded_for_every_process(channel_server):
    assert (await channel_server.post(corpus_body("template_status_update_paused.json")))[0] == 200
    store = channel_server.channel._runtime.store
    rows = await store.run(lambda c: c.execute(sa.select(template_statuses)).fetchall())
    assert [(r.name, r.language, r.status) for r in rows] == [
        ("auto_generated_123456", "en-US", "PAUSED")
    ]


@pytest.mark.parametrize("content_length", [b"abc", b"-1", b"99999999999999999999999"])
async def test_an_invalid_content_length_is_a_400_and_the_server_stays_up(channel_server, content_length):
    host, port = channel_server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /webhooks/whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + content_length + b"\r\nConnection: close\r\n\r\n{}"
    )
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert line.split()[1] in (b"400", b"413")
    status, _ = await channel_server.get("/webhooks/whatsapp/")
    assert status == 200
