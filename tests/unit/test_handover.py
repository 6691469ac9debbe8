"""The handover queue and its summary (whatsapp_core.handover)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from whatsapp_core import handover
from whatsapp_core.handover import (
    HandoverReason,
    HandoverState,
    HandoverSummary,
    build_summary,
    store_window,
)
from whatsapp_core.store import InboxItem, OutboxState, StatusChange, WhatsAppStore
from whatsapp_core.timeline import TimelineEntry
from whatsapp_core.window import ConversationFacts, WindowKind

T0 = 1_700_000_000  # in the past: outbound rows are stamped with the real clock
HOUR = 3600
CONTACT = "393331234567"


def contact_says(text: str, at: int, **whatsapp) -> dict:
    details = {
        "message_id": f"wamid.{at}",
        "timestamp": at,
        "type": "text",
        "wa_id": CONTACT,
        "profile_name": "Giulia",
        "phone_number_id": "pn",
        **whatsapp,
    }
    return {"event": "user", "text": text, "timestamp": at + 1.5, "metadata": {"whatsapp": details}}


def bot_says(text: str, at: float, **metadata) -> dict:
    return {"event": "bot", "text": text, "timestamp": at, "metadata": metadata}


def unsupported(at: int, kind: str = "view_once") -> dict:
    details = {
        "kind": kind,
        "recommended_action": "disable_ephemeral_and_resend",
        "meta_type": "unsupported",
        "error_code": 131051,
        "raw": {"type": "unsupported", "id": f"wamid.{at}", "note": "<img src=x onerror=alert(1)>"},
    }
    return contact_says(
        f'/whatsapp_unsupported{{"unsupported_kind": "{kind}"}}', at, type="unsupported",
        unsupported=details,
    )


def summary_of(events, **kwargs) -> HandoverSummary:
    kwargs.setdefault("reason", HandoverReason.REQUESTED)
    kwargs.setdefault("now", T0 + HOUR)
    return build_summary(CONTACT, events, **kwargs)


# ---------------------------------------------------------------------- summary
def test_summary_names_the_contact_with_a_masked_number():
    summary = summary_of([contact_says("hi", T0)])
    assert summary.contact_name == "Giulia"
    assert summary.masked_number == "***4567"
    assert CONTACT not in str(summary.to_dict()["contact"])


def test_summary_without_whatsapp_metadata_masks_the_conversation_id():
    summary = summary_of([{"event": "user", "text": "hi", "timestamp": T0}])
    assert summary.contact_name is None
    assert summary.masked_number == "***4567"


def test_summary_window_follows_the_last_contact_message():
    summary = summary_of([contact_says("hi", T0), contact_says("still there?", T0 + 600)])
    assert summary.window.open
    assert summary.window.expires_at == T0 + 600 + 24 * HOUR
    assert summary.window.seconds_left == 24 * HOUR + 600 - HOUR


def test_summary_window_uses_carried_over_facts_when_the_session_has_no_contact_message():
    previous = ConversationFacts(last_inbound_at=T0)
    summary = summary_of([], previous_facts=previous, now=T0 + 25 * HOUR)
    assert not summary.window.open
    assert summary.window.kind is WindowKind.NONE
    assert summary.facts.last_inbound_at == T0


def test_summary_keeps_the_last_ten_turns_and_tells_bot_from_agent():
    events = []
    for n in range(8):
        events.append(contact_says(f"question {n}", T0 + n * 10))
        events.append(bot_says(f"answer {n}", T0 + n * 10 + 2))
    events.append(bot_says("an agent wrote this", T0 + 100, agent=True))
    turns = summary_of(events).last_turns
    assert len(turns) == 10
    assert turns[-1].speaker == "agent" and turns[-1].text == "an agent wrote this"
    assert [t.speaker for t in turns[:2]] == ["bot", "contact"]
    assert turns[1].text == "question 4" and turns[1].at == T0 + 40


def test_summary_leaves_out_external_intents_and_events_without_text():
    events = [
        contact_says("hi", T0),
        {"event": "user", "text": "EXTERNAL: whatsapp_template_failed", "timestamp": T0 + 5},
        {"event": "action", "name": "action_listen", "timestamp": T0 + 6},
        bot_says("", T0 + 7),
    ]
    assert [t.text for t in summary_of(events).last_turns] == ["hi"]


def test_summary_carries_unsupported_payloads_with_their_raw_json():
    events = [contact_says("hi", T0), unsupported(T0 + 5), unsupported(T0 + 9, "edited")]
    payloads = summary_of(events).unsupported
    assert [p["kind"] for p in payloads] == ["view_once", "edited"]
    assert payloads[0]["message_id"] == f"wamid.{T0 + 5}"
    assert payloads[0]["raw"]["note"] == "<img src=x onerror=alert(1)>"


def test_summary_lists_failed_and_stuck_deliveries_from_the_timeline():
    failure = {"error_code": 131026, "explanation": "undeliverable"}
    timeline = [
        TimelineEntry("in", T0, "wamid.a", "text", "hi", "done"),
        TimelineEntry("out", T0 + 1, "wamid.b", "text", "hello", "read"),
        TimelineEntry("out", T0 + 2, "wamid.c", "text", "are you there?", "failed", failure=failure),
    ]
    (only,) = summary_of([contact_says("hi", T0)], timeline=timeline).delivery_failures
    assert only == {"message_id": "wamid.c", "at": T0 + 2, "summary": "are you there?", "failure": failure}


def test_summary_survives_its_json_form():
    events = [contact_says("hi", T0, referral={"entry_point": "ad"}), bot_says("hello", T0 + 3),
              unsupported(T0 + 5)]
    summary = summary_of(events, reason=HandoverReason.TEMPLATE_FAILED, reason_detail="paused")
    assert HandoverSummary.from_dict(summary.to_dict()) == summary


def test_store_window_runs_24_hours_from_the_last_contact_message():
    window = store_window(T0 + 20 * HOUR, now=T0 + 30 * HOUR)
    assert window.open and window.expires_at == T0 + 44 * HOUR
    assert window.kind is WindowKind.SERVICE


def test_store_window_is_closed_24_hours_after_the_last_contact_message():
    assert store_window(None, now=T0).open is False
    window = store_window(T0, now=T0 + 24 * HOUR)
    assert not window.open and window.seconds_left == 0


# -------------------------------------------------------------------------- SQL
@pytest.fixture
def store(tmp_path):
    created = WhatsAppStore(f"sqlite:///{tmp_path / 'handover.db'}", instance_id="test")
    yield created
    created.close()


def item(message_id: str, ts: int, *, text: str = "hi", conversation: str = CONTACT,
         phone_number_id: str = "pn", opens_window: bool = True) -> InboxItem:
    metadata = {"whatsapp": {"type": "text", "profile_name": "Giulia", "wa_id": conversation}}
    return InboxItem(message_id, conversation, phone_number_id, conversation, ts, opens_window,
                     text, metadata)


async def queue(store: WhatsAppStore, conversation: str = CONTACT, *, now: float = T0,
                reason: HandoverReason = HandoverReason.REQUESTED):
    summary = build_summary(conversation, [contact_says("help", T0)], reason=reason, now=now)
    return await store.run(
        lambda c: handover.enqueue(c, summary, phone_number_id="pn", now=now)
    )


def test_the_store_creates_the_handover_table(tmp_path):
    store = WhatsAppStore(f"sqlite:///{tmp_path / 'h.db'}", instance_id="t")
    try:
        assert "whatsapp_handovers" in sa.inspect(store._engine).get_table_names()
    finally:
        store.close()


async def test_enqueue_puts_a_conversation_in_the_queue_waiting(store):
    queued = await queue(store)
    assert queued.state is HandoverState.WAITING and queued.is_open
    assert queued.reason is HandoverReason.REQUESTED and queued.agent is None
    assert queued.summary.contact_name == "Giulia"


async def test_a_conversation_is_never_queued_twice(store):
    first = await queue(store)
    await store.run(lambda c: handover.take(c, CONTACT, "Ada", now=T0 + 5))
    again = await queue(store, now=T0 + 10, reason=HandoverReason.TEMPLATE_FAILED)
    assert again.id == first.id
    assert again.state is HandoverState.WITH_AGENT and again.agent == "Ada"
    assert again.reason is HandoverReason.TEMPLATE_FAILED
    assert len(await store.run(handover.open_queue)) == 1


async def test_take_and_hand_back_move_the_handover_through_its_states(store):
    await queue(store)
    taken = await store.run(lambda c: handover.take(c, CONTACT, "Ada", now=T0 + 5))
    assert (taken.state, taken.agent, taken.taken_at) == (HandoverState.WITH_AGENT, "Ada", T0 + 5)
    retaken = await store.run(lambda c: handover.take(c, CONTACT, "Bo", now=T0 + 6))
    assert retaken.agent == "Bo"
    closed = await store.run(lambda c: handover.hand_back(c, CONTACT, now=T0 + 9))
    assert closed.state is HandoverState.HANDED_BACK and closed.closed_at == T0 + 9
    assert not closed.is_open
    assert await store.run(handover.open_queue) == []
    assert (await store.run(lambda c: handover.latest_handover(c, CONTACT))).id == closed.id


async def test_take_and_hand_back_need_an_open_handover(store):
    assert await store.run(lambda c: handover.take(c, CONTACT, "Ada")) is None
    assert await store.run(lambda c: handover.hand_back(c, CONTACT)) is None
    await queue(store)
    await store.run(lambda c: handover.hand_back(c, CONTACT))
    assert await store.run(lambda c: handover.hand_back(c, CONTACT)) is None


async def test_a_conversation_handed_back_can_be_queued_again(store):
    first = await queue(store)
    await store.run(lambda c: handover.hand_back(c, CONTACT))
    second = await queue(store, now=T0 + 100)
    assert second.id != first.id and second.state is HandoverState.WAITING
    assert (await store.run(lambda c: handover.latest_handover(c, CONTACT))).id == second.id


async def test_the_queue_lists_open_handovers_oldest_first_with_clock_and_last_message(store):
    await store.accept([
        item("wamid.a1", T0, text="first"),
        item("wamid.a2", T0 + 50, text="a system notice", opens_window=False),
        item("wamid.a3", T0 + 40, text="other number", phone_number_id="other"),
        item("wamid.b1", T0 + 20, text="bonjour", conversation="33611112222"),
    ])
    (row,) = await store.enqueue_outbound(
        "33611112222", "pn", "33611112222", [("text", {"type": "text", "text": {"body": "salut"}})]
    )
    await store.finish_outbound(row.id, state=OutboxState.SENT, wamid="wamid.out", attempts=1)
    await queue(store, "33611112222", now=T0 + 30)
    await queue(store, now=T0 + 10)
    await queue(store, "44700900000", now=T0 + 20)
    await store.run(lambda c: handover.hand_back(c, "44700900000"))

    entries = await store.run(handover.open_queue)

    assert [e.handover.conversation_id for e in entries] == [CONTACT, "33611112222"]
    mine, other = entries
    assert mine.last_inbound_at == T0  # not the system message, not another business number
    assert mine.last_message.text == "a system notice" and mine.last_message.direction == "in"
    assert other.last_message.direction == "out" and other.last_message.text == "salut"
    assert mine.window(now=T0 + HOUR).expires_at == T0 + 24 * HOUR


async def test_last_contact_message_gives_where_replies_go(store):
    assert await store.run(lambda c: handover.last_contact_message(c, CONTACT)) is None
    await store.accept([item("wamid.a1", T0), item("wamid.a2", T0 + 9)])
    contact = await store.run(lambda c: handover.last_contact_message(c, CONTACT))
    assert (contact.recipient, contact.phone_number_id, contact.wa_timestamp) == (CONTACT, "pn", T0 + 9)
    assert contact.profile_name == "Giulia" and contact.wa_id == CONTACT


async def test_last_inbound_at_is_the_stores_window_clock(store):
    await store.accept([item("wamid.a1", T0), item("wamid.a2", T0 + 7, opens_window=False)])
    await store.apply_statuses([StatusChange("wamid.unknown", OutboxState.READ, recipient=CONTACT)])
    ours = await store.run(lambda c: handover.last_inbound_at(c, CONTACT, "pn"))
    assert ours == await store.last_inbound_timestamp(CONTACT, "pn") == T0
