"""A scripted conversation through the real webhook, asserting what the contact received."""

from __future__ import annotations

import time

import pytest

from tools.timeline import main as timeline_main

pytestmark = pytest.mark.e2e


def body_of(message: dict) -> str:
    payload = message["payload"]
    kind = payload["type"]
    if kind == "text":
        return payload["text"]["body"]
    if kind == "interactive":
        return payload["interactive"]["body"]["text"]
    return message.get("rendered_text") or ""


def wait_for_state(bot, contact: str, index: int, state: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = bot.client.messages(contact)[index]
        if message["status"] == state or time.monotonic() > deadline:
            return message
        time.sleep(0.05)


def test_greeting_gets_reply_buttons_and_a_tap_reaches_a_person(bot):
    contact = "393331000001"
    bot.client.inbound_text(contact, "hello", name="Giulia")
    (greeting,) = bot.client.wait_for_messages(contact, 1)
    assert greeting["type"] == "interactive"
    interactive = greeting["payload"]["interactive"]
    assert interactive["type"] == "button"
    assert body_of(greeting).startswith("Hi! 👋")
    buttons = {b["reply"]["title"]: b["reply"]["id"] for b in interactive["action"]["buttons"]}
    assert buttons["Talk to a person"].startswith("/")

    bot.client.inbound_reply(contact, greeting["wamid"], buttons["Talk to a person"], "Talk to a person")
    messages = bot.client.wait_for_messages(contact, 2)
    assert body_of(messages[1]).startswith("I'm passing you to a member of our team")


def test_contact_message_is_marked_read_with_typing_indicator(bot):
    contact = "393331000002"
    sent = bot.client.inbound_text(contact, "hi there")
    bot.client.wait_for_messages(contact, 1)
    receipts = bot.client.read_receipts(contact)
    assert any(r["message_id"] == sent["wamid"] and r.get("typing_indicator") for r in receipts)


def test_media_without_caption_is_acknowledged(bot):
    contact = "393331000003"
    bot.client.inbound_media(contact, "image")
    (reply,) = bot.client.wait_for_messages(contact, 1)
    assert body_of(reply) == "Thanks, I've received your photo."


def test_unsupported_messages_get_the_recommended_reply_then_an_offer_of_a_person(bot):
    contact = "393331000004"
    bot.client.inbound(contact, "unsupported", unsupported_type="keep_in_chat")
    (first,) = bot.client.wait_for_messages(contact, 1)
    assert "disappearing" in body_of(first)
    bot.client.inbound(contact, "unsupported", unsupported_type="edit")
    second = bot.client.wait_for_messages(contact, 2)[1]
    assert "corrected message" in body_of(second)
    bot.client.inbound(contact, "unsupported", error_code=131060)
    third = bot.client.wait_for_messages(contact, 3)[2]
    assert "a member of our team can help" in body_of(third)
    time.sleep(0.5)
    assert len(bot.client.messages(contact)) == 3


def test_statuses_reach_the_timeline(bot, capsys):
    contact = "393331000005"
    bot.client.inbound_text(contact, "thanks")
    bot.client.wait_for_messages(contact, 1)
    assert wait_for_state(bot, contact, 0, "read")["status"] == "read"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        timeline_main([contact, "--db-url", f"sqlite:///{bot.store_path}"])
        out = capsys.readouterr().out
        if "(read)" in out:
            break
        time.sleep(0.2)
    assert "<- [text] thanks" in out
    assert "-> [text] You're welcome!" in out and "(read)" in out


def test_duplicated_webhooks_give_one_reply(bot):
    contact = "393331000006"
    bot.client.set_faults(webhooks={"duplicate": True})
    try:
        bot.client.inbound_text(contact, "goodbye")
        bot.client.wait_for_messages(contact, 1)
        time.sleep(1.0)
    finally:
        bot.client.clear_faults()
    assert [body_of(m) for m in bot.client.messages(contact)] == [
        "Goodbye, and thanks for getting in touch!"
    ]


def test_throttled_send_is_retried_and_delivered_once(bot):
    contact = "393331000007"
    bot.client.set_faults(throttle={"count": 2, "code": 130429})
    try:
        bot.client.inbound_text(contact, "thank you")
        (reply,) = bot.client.wait_for_messages(contact, 1, timeout=20)
    finally:
        bot.client.clear_faults()
    assert body_of(reply) == "You're welcome! Message us here any time."
    time.sleep(0.5)
    assert len(bot.client.messages(contact)) == 1
