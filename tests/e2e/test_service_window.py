"""The window and templates end to end: late messages, 131047, follow-ups and the ledger."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import FOLLOW_UP_AFTER
from whatsapp_core import ledger
from whatsapp_core.store import create_engine
from whatsapp_core.timeline import load_timeline

pytestmark = pytest.mark.e2e


def top_up(bot, amount: str) -> None:
    engine = create_engine(f"sqlite:///{bot.store_path}")
    with engine.begin() as connection:
        ledger.top_up(connection, ledger.parse_amount(amount), "e2e")


def charges(bot) -> list:
    engine = create_engine(f"sqlite:///{bot.store_path}")
    with engine.begin() as connection:
        return [e for e in ledger.recent_entries(connection, 200) if e.kind.value == "charge"]


def test_a_message_delivered_25_hours_late_gets_the_template_not_free_form(bot):
    """Meta re-delivers for days: the window follows WhatsApp's timestamp, not the arrival."""
    contact = "393339000001"
    top_up(bot, "5.00")
    bot.client.set_clock(time.time() - 25 * 3600)
    try:
        bot.client.inbound_text(contact, "hello", name="Giulia")
        (reply,) = bot.client.wait_for_messages(contact, 1, timeout=20)
    finally:
        bot.client.set_clock(time.time())
    assert reply["type"] == "template"
    assert reply["payload"]["template"]["name"] == "follow_up"
    assert reply["rendered_text"].startswith("Hi Giulia, I'd like to follow up")


def test_131047_after_a_follow_up_reopens_the_conversation_with_the_template(bot):
    """A follow-up nudge sent after Meta's 24 h fails with 131047; the bot sends the template."""
    contact = "393339000002"
    top_up(bot, "5.00")
    before = len(charges(bot))
    bot.client.inbound_text(contact, "hi", name="Marco")
    bot.client.wait_for_messages(contact, 1)  # the greeting asks a question: follow-up due
    bot.client.advance_clock(25 * 3600)  # Meta's clock: the window has closed
    try:
        messages = bot.client.wait_for_messages(contact, 3, timeout=FOLLOW_UP_AFTER + 40)
    finally:
        bot.client.set_clock(time.time())
    nudge, template = messages[1], messages[2]
    assert nudge["type"] == "text" and nudge["status"] == "failed"
    assert nudge["error"]["code"] == 131047
    assert template["type"] == "template"
    assert template["rendered_text"].startswith("Hi Marco")
    deadline = time.monotonic() + 15
    while len(charges(bot)) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(charges(bot)) > before  # Meta's pricing said billable: the hold was charged


def test_no_balance_no_template(bot):
    contact = "393339000003"
    engine = create_engine(f"sqlite:///{bot.store_path}")
    with engine.begin() as connection:
        available = ledger.balance(connection).available
        if available:
            ledger.reserve(
                connection, key="drain", conversation_id="-", template="-", category="marketing",
                country="default", price=available,
            )
    bot.client.set_clock(time.time() - 25 * 3600)
    try:
        bot.client.inbound_text(contact, "hello")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with engine.begin() as connection:
                held = [e for e in load_timeline(connection, contact) if e.state == "held"]
            if held:
                break
            time.sleep(0.2)
    finally:
        bot.client.set_clock(time.time())
        with engine.begin() as connection:
            ledger.release(connection, "drain", "test over")
    assert bot.client.messages(contact) == []
    assert held and held[0].failure["reason"] == "window_closed"


def test_inside_the_72_hour_free_entry_point_the_template_is_free(bot):
    """A contact from a Click-to-WhatsApp ad, answered at once: 48 h later the service
    window is closed (131047, then the template) but the free entry point still runs, so
    Meta prices the template free_entry_point and the ledger releases the hold."""
    contact = "393339000004"
    top_up(bot, "5.00")
    before = len(charges(bot))
    referral = {"source_type": "ad", "source_id": "120226305854810726",
                "source_url": "https://fb.me/x", "headline": "Chat with us", "ctwa_clid": "c1"}
    bot.client.inbound_text(contact, "hi", name="Lucia", referral=referral)
    bot.client.wait_for_messages(contact, 1)
    bot.client.advance_clock(48 * 3600)
    try:
        messages = bot.client.wait_for_messages(contact, 3, timeout=FOLLOW_UP_AFTER + 40)
    finally:
        bot.client.set_clock(time.time())
    template = messages[2]
    assert messages[1]["error"]["code"] == 131047
    assert template["type"] == "template"
    deadline = time.monotonic() + 15
    while not (template.get("pricing") or {}).get("type") and time.monotonic() < deadline:
        time.sleep(0.2)
        template = bot.client.messages(contact)[2]
    assert template["pricing"]["type"] == "free_entry_point"
    time.sleep(1)
    assert len(charges(bot)) == before  # released, not charged
