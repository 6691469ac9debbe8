"""The customer service window and the free entry point (whatsapp_core.window)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from whatsapp_core.window import (
    ConversationFacts,
    WindowKind,
    WindowPolicy,
    facts_from_events,
    merge_facts,
    window_state,
)

T0 = 1_800_000_000
HOUR = 3600
DAY = 24 * HOUR
POLICY = WindowPolicy()


def contact(at: int, *, entry_point: str | None = None, type_: str = "text", text: str = "hi"):
    """A user event as rasa-sdk hands it to actions (Rasa receives it 2 s after WhatsApp)."""
    referral = None
    if entry_point is not None:
        referral = {"source_type": entry_point, "entry_point": entry_point, "source_id": "1"}
    return {
        "event": "user",
        "text": text,
        "timestamp": at + 2.25,
        "metadata": {"whatsapp": {"timestamp": at, "type": type_, "referral": referral}},
    }


def bot(at: float):
    return {"event": "bot", "text": "hello", "timestamp": at, "metadata": {}}


def from_ad(entry_at: int, replied_at: int) -> ConversationFacts:
    return ConversationFacts(
        last_inbound_at=entry_at,
        entry_point="ad",
        entry_point_at=entry_at,
        first_reply_after_entry_at=replied_at,
    )


# ----------------------------------------------------------------- service window
def test_free_form_allowed_at_23_59_59():
    state = window_state(ConversationFacts(last_inbound_at=T0), T0 + DAY - 1)
    assert state.open
    assert state.kind is WindowKind.SERVICE
    assert state.expires_at == T0 + DAY
    assert state.seconds_left == 1


def test_free_form_refused_at_exactly_24_hours():
    state = window_state(ConversationFacts(last_inbound_at=T0), T0 + DAY)
    assert not state.open
    assert state.kind is WindowKind.NONE
    assert state.expires_at is None
    assert state.seconds_left == 0


def test_fractional_now_just_before_the_end_is_still_open():
    assert window_state(ConversationFacts(last_inbound_at=T0), T0 + DAY - 0.5).open


def test_no_contact_message_means_no_window():
    state = window_state(ConversationFacts(), T0)
    assert (state.open, state.kind, state.entry_point) == (False, WindowKind.NONE, None)


def test_future_whatsapp_timestamp_counts_as_now():
    state = window_state(ConversationFacts(last_inbound_at=T0 + 600), T0)
    assert state.expires_at == T0 + DAY
    assert state.seconds_left == DAY


@given(last=st.integers(0, 2**40), offset=st.integers(-DAY, 3 * DAY))
def test_open_exactly_while_less_than_24_hours_have_passed(last, offset):
    now = last + offset
    state = window_state(ConversationFacts(last_inbound_at=last), now)
    assert state.open == (now < last + DAY)
    assert state.expires_at is None or state.expires_at <= now + DAY


# ------------------------------------------------------------- free entry point
def test_free_entry_point_lasts_72_hours_from_the_reply():
    facts = from_ad(T0, T0 + 60)
    assert window_state(facts, T0 + 60 + 72 * HOUR - 1).kind is WindowKind.FREE_ENTRY_POINT
    after = window_state(facts, T0 + 60 + 72 * HOUR)
    assert after.kind is WindowKind.NONE
    assert after.free_entry_point_expires_at is None
    assert after.entry_point is None


def test_inside_free_entry_point_free_form_still_needs_the_service_window():
    state = window_state(from_ad(T0, T0 + 60), T0 + 30 * HOUR)
    assert state.kind is WindowKind.FREE_ENTRY_POINT
    assert not state.open
    assert state.expires_at is None
    assert state.free_entry_point_expires_at == T0 + 60 + 72 * HOUR
    assert state.entry_point == "ad"


def test_reply_after_24_hours_opens_no_free_entry_point():
    late = window_state(from_ad(T0, T0 + DAY), T0 + DAY + 60)
    assert late.kind is WindowKind.NONE
    in_time = window_state(from_ad(T0, T0 + DAY - 1), T0 + DAY + 60)
    assert in_time.kind is WindowKind.FREE_ENTRY_POINT


def test_unanswered_entry_point_is_a_service_window_that_knows_its_origin():
    facts = ConversationFacts(last_inbound_at=T0, entry_point="post", entry_point_at=T0)
    state = window_state(facts, T0 + HOUR)
    assert state.kind is WindowKind.SERVICE
    assert state.entry_point == "post"
    assert state.free_entry_point_expires_at is None


def test_reply_timestamp_in_the_future_counts_as_now():
    state = window_state(from_ad(T0, T0 + 10 * DAY), T0 + HOUR)
    assert state.free_entry_point_expires_at == T0 + HOUR + 72 * HOUR


def test_to_slots_format():
    state = window_state(from_ad(1_767_225_600, 1_767_225_660), 1_767_225_700)
    assert state.to_slots() == {
        "whatsapp_window_open": True,
        "whatsapp_window_expires_at": "2026-01-02T00:00:00Z",
        "whatsapp_window_kind": "free_entry_point",
        "whatsapp_entry_point": "ad",
    }
    closed = window_state(ConversationFacts(), T0).to_slots()
    assert closed == {
        "whatsapp_window_open": False,
        "whatsapp_window_expires_at": None,
        "whatsapp_window_kind": None,
        "whatsapp_entry_point": None,
    }
    assert window_state(ConversationFacts(last_inbound_at=T0), T0).to_slots()[
        "whatsapp_window_kind"
    ] == "service"


# --------------------------------------------------------------------- policy
def test_policy_from_env_reads_hours_and_keeps_defaults():
    policy = WindowPolicy.from_env(
        {"WHATSAPP_SERVICE_WINDOW_HOURS": "12", "WHATSAPP_FREE_ENTRY_POINT_HOURS": "0.5"}
    )
    assert policy == WindowPolicy(12 * HOUR, 1800, DAY)
    assert not window_state(ConversationFacts(last_inbound_at=T0), T0 + 12 * HOUR, policy).open


@pytest.mark.parametrize("value", ["abc", "0", "-3", "nan"])
def test_policy_from_env_names_a_bad_variable(value):
    with pytest.raises(ValueError, match="WHATSAPP_ENTRY_POINT_REPLY_HOURS"):
        WindowPolicy.from_env({"WHATSAPP_ENTRY_POINT_REPLY_HOURS": value})


# ----------------------------------------------------------- facts from events
def test_facts_from_events_use_whatsapp_time_and_first_reply_after_the_ad():
    events = [
        {"event": "action", "name": "action_session_start", "timestamp": T0 - 5},
        contact(T0, entry_point="ad"),
        bot(T0 + 4.7),
        contact(T0 + 50),
        bot(T0 + 55),
    ]
    assert facts_from_events(events) == ConversationFacts(T0 + 50, "ad", T0, T0 + 4)


def test_non_contact_events_never_move_the_window():
    events = [
        contact(T0),
        contact(T0 + 100, type_="system", text='/whatsapp_system{"system_type":"x"}'),
        {**contact(T0 + 200), "text": "EXTERNAL: reminder_due"},
        {"event": "user", "text": "typed in a test", "timestamp": T0 + 300, "metadata": {}},
        {"event": "user", "text": "EXTERNAL: remind", "timestamp": T0 + 400},
        {"event": "reminder", "timestamp": T0 + 500},
    ]
    assert facts_from_events(events).last_inbound_at == T0


def test_referral_on_a_later_message_while_the_window_was_open_is_not_an_entry_point():
    facts = facts_from_events([contact(T0), bot(T0 + 5), contact(T0 + HOUR, entry_point="ad")])
    assert facts.entry_point is None
    assert window_state(facts, T0 + 2 * HOUR).kind is WindowKind.SERVICE


def test_referral_after_the_window_closed_starts_a_new_entry_point():
    events = [contact(T0), bot(T0 + 5), contact(T0 + 2 * DAY, entry_point="post"), bot(T0 + 2 * DAY + 9)]
    assert facts_from_events(events) == ConversationFacts(
        T0 + 2 * DAY, "post", T0 + 2 * DAY, T0 + 2 * DAY + 9
    )


def test_returning_to_the_ad_inside_the_free_window_keeps_the_first_entry_point():
    events = [
        contact(T0, entry_point="ad"),
        bot(T0 + 5),
        contact(T0 + 30 * HOUR, entry_point="ad"),
        bot(T0 + 30 * HOUR + 5),
    ]
    assert facts_from_events(events) == ConversationFacts(T0 + 30 * HOUR, "ad", T0, T0 + 5)


def test_plain_message_after_every_window_closed_clears_the_entry_point():
    events = [contact(T0, entry_point="ad"), bot(T0 + 5), contact(T0 + 5 * DAY)]
    facts = facts_from_events(events)
    assert facts == ConversationFacts(last_inbound_at=T0 + 5 * DAY)
    assert window_state(facts, T0 + 5 * DAY + 1).entry_point is None


def test_bot_reply_before_the_entry_message_is_not_the_answer():
    facts = facts_from_events([bot(T0 - 10), contact(T0, entry_point="ad")])
    assert facts.first_reply_after_entry_at is None


# ------------------------------------------------------------- across sessions
def test_slots_round_trip_and_tolerate_float_slots():
    facts = ConversationFacts(T0 + 9, "ad", T0, T0 + 4)
    slots = facts.to_slots()
    assert slots == {
        "whatsapp_last_inbound_at": T0 + 9,
        "whatsapp_entry_point": "ad",
        "whatsapp_entry_point_at": T0,
        "whatsapp_first_reply_at": T0 + 4,
    }
    assert ConversationFacts.from_slots(slots) == facts
    as_floats = {key: float(v) if isinstance(v, int) else v for key, v in slots.items()}
    assert ConversationFacts.from_slots(as_floats) == facts
    assert ConversationFacts.from_slots({}) == ConversationFacts()
    assert ConversationFacts.from_slots(
        {"whatsapp_entry_point": "banner", "whatsapp_entry_point_at": T0}
    ) == ConversationFacts()


def test_new_session_keeps_the_entry_point_of_the_conversation_start():
    previous = ConversationFacts(T0 + 60, "ad", T0, T0 + 4)
    events = [{"event": "session_started", "timestamp": T0 + 2 * HOUR}, contact(T0 + 2 * HOUR)]
    facts = facts_from_events(events, POLICY, previous=previous)
    assert facts == ConversationFacts(T0 + 2 * HOUR, "ad", T0, T0 + 4)
    assert window_state(facts, T0 + 2 * HOUR).kind is WindowKind.FREE_ENTRY_POINT


def test_ad_tapped_again_in_a_new_session_while_the_window_is_open_is_not_an_entry_point():
    previous = ConversationFacts(last_inbound_at=T0)
    facts = facts_from_events([contact(T0 + HOUR, entry_point="ad")], POLICY, previous=previous)
    assert facts == ConversationFacts(last_inbound_at=T0 + HOUR)


def test_answer_in_a_later_session_to_a_carried_over_entry_point():
    previous = ConversationFacts(T0, "ad", T0, None)
    facts = facts_from_events([bot(T0 - 30), bot(T0 + 600)], POLICY, previous=previous)
    assert facts.first_reply_after_entry_at == T0 + 600


def test_replaying_events_already_in_the_slots_changes_nothing():
    events = [contact(T0, entry_point="ad"), bot(T0 + 5), contact(T0 + 60), bot(T0 + 65)]
    once = facts_from_events(events)
    assert facts_from_events(events, POLICY, previous=once) == once


def test_merge_keeps_the_newest_contact_message():
    merged = merge_facts(ConversationFacts(T0 + 100), ConversationFacts(T0 + 50))
    assert merged.last_inbound_at == T0 + 100
    assert merge_facts(None, ConversationFacts(T0)) == ConversationFacts(T0)
    assert merge_facts(ConversationFacts(T0), ConversationFacts()) == ConversationFacts(T0)


def test_merge_replaces_the_entry_point_only_when_a_new_conversation_started():
    previous = ConversationFacts(T0, "ad", T0, T0 + 5)
    inside = ConversationFacts(T0 + DAY, "post", T0 + DAY, T0 + DAY + 5)
    assert merge_facts(previous, inside).entry_point_at == T0
    later = ConversationFacts(T0 + 4 * DAY, "post", T0 + 4 * DAY, T0 + 4 * DAY + 5)
    assert merge_facts(previous, later) == later
