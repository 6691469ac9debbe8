"""Window slots and the free-form-or-template helper, with rasa-sdk's Tracker."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

import actions.window as window_actions
from actions.window import (
    ActionCheckWhatsAppWindow,
    ActionWhatsAppDeliveryFailed,
    ActionWhatsAppFollowUp,
    free_form_or_template,
)
from whatsapp_core import ledger
from whatsapp_core.reopening import TemplateResources

REPO = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000
CONTACT = "393331234567"


@pytest.fixture(autouse=True)
def resources(tmp_path, monkeypatch):
    created = TemplateResources(
        store_url=f"sqlite:///{tmp_path / 'actions.db'}",
        catalogue_path=REPO / "templates" / "catalogue.yml",
        rate_card_path=REPO / "templates" / "rate_card.yml",
    )
    monkeypatch.setattr(window_actions, "_resources", created)
    return created


def user(text: str, wa_ts: int | None, *, referral: str | None = None, name="Giulia") -> dict:
    whatsapp = {"timestamp": wa_ts, "type": "text", "profile_name": name}
    if referral:
        whatsapp["referral"] = {"entry_point": referral, "source_type": referral}
    return {
        "event": "user",
        "text": text,
        "timestamp": float(wa_ts or NOW),
        "metadata": {"whatsapp": whatsapp} if wa_ts is not None else {},
        "parse_data": {"intent": {"name": "greet"}, "entities": []},
    }


def bot(at: int) -> dict:
    return {"event": "bot", "text": "hi", "timestamp": float(at)}


def tracker(events: list[dict], slots: dict | None = None, entities: list | None = None) -> Tracker:
    latest = {"intent": {"name": "x"}, "entities": entities or [], "text": ""}
    return Tracker(CONTACT, slots or {}, latest, events, False, None, {}, "action_listen")


def slots_of(events) -> dict:
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


async def test_check_window_sets_slots_from_whatsapp_timestamps(monkeypatch):
    monkeypatch.setattr(window_actions.time, "time", lambda: NOW + 3600)
    events = await ActionCheckWhatsAppWindow().run(
        CollectingDispatcher(), tracker([user("hi", NOW)]), {}
    )
    slots = slots_of(events)
    assert slots["whatsapp_window_open"] is True
    assert slots["whatsapp_window_kind"] == "service"
    assert slots["whatsapp_window_expires_at"].endswith("Z")
    assert slots["whatsapp_last_inbound_at"] == NOW


async def test_free_entry_point_from_an_ad(monkeypatch):
    monkeypatch.setattr(window_actions.time, "time", lambda: NOW + 48 * 3600)
    events = [user("from the ad", NOW, referral="ad"), bot(NOW + 60)]
    slots = slots_of(await ActionCheckWhatsAppWindow().run(CollectingDispatcher(), tracker(events), {}))
    assert slots["whatsapp_window_kind"] == "free_entry_point"
    assert slots["whatsapp_window_open"] is False  # free-form still needs the 24 h window
    assert slots["whatsapp_entry_point"] == "ad"


def test_carried_over_slots_keep_the_window_across_sessions():
    slots = {"whatsapp_last_inbound_at": float(NOW)}
    dispatcher = CollectingDispatcher()
    free_form_or_template(
        dispatcher, tracker([], slots), response="utter_x", template="follow_up", now=NOW + 60
    )
    assert dispatcher.messages[0]["response"] == "utter_x"


def test_free_form_inside_the_window():
    dispatcher = CollectingDispatcher()
    free_form_or_template(
        dispatcher, tracker([user("hi", NOW)]), response="utter_nudge", template="follow_up",
        now=NOW + 24 * 3600 - 1,
    )
    assert [m["response"] for m in dispatcher.messages] == ["utter_nudge"]


def test_template_outside_the_window_when_the_balance_covers_it(resources):
    with resources.engine.begin() as connection:
        ledger.top_up(connection, ledger.parse_amount("5"))
    dispatcher = CollectingDispatcher()
    events = free_form_or_template(
        dispatcher, tracker([user("hi", NOW)]), response="utter_nudge", template="follow_up",
        now=NOW + 24 * 3600,
    )
    (message,) = dispatcher.messages
    payload = message["custom"]["whatsapp"]
    assert payload["template"]["name"] == "follow_up"
    assert payload["template"]["components"][0]["parameters"][0]["text"] == "Giulia"
    assert slots_of(events)["whatsapp_template_failure"] is None


def test_no_balance_means_no_send_a_reason_and_a_handover():
    dispatcher = CollectingDispatcher()
    events = free_form_or_template(
        dispatcher, tracker([user("hi", NOW)]), response="utter_nudge", template="follow_up",
        now=NOW + 25 * 3600,
    )
    assert dispatcher.messages == []
    assert slots_of(events)["whatsapp_template_failure"] == "insufficient_balance"
    assert {"event": "followup", "name": "action_handoff"} in [
        {k: e[k] for k in ("event", "name")} for e in events if e["event"] == "followup"
    ]


def test_unknown_template_is_refused_with_its_reason():
    dispatcher = CollectingDispatcher()
    events = free_form_or_template(
        dispatcher, tracker([user("hi", NOW)]), response="utter_nudge", template="nope",
        now=NOW + 25 * 3600,
    )
    assert dispatcher.messages == [] and slots_of(events)["whatsapp_template_failure"] == "not_found"


async def test_131047_forces_the_template_even_if_the_tracker_says_open(resources, monkeypatch):
    monkeypatch.setattr(window_actions.time, "time", lambda: NOW + 60)
    with resources.engine.begin() as connection:
        ledger.top_up(connection, ledger.parse_amount("5"))
    dispatcher = CollectingDispatcher()
    entities = [{"entity": "error_code", "value": 131047}]
    await ActionWhatsAppDeliveryFailed().run(dispatcher, tracker([user("hi", NOW)], entities=entities), {})
    assert dispatcher.messages[0]["custom"]["whatsapp"]["type"] == "template"


async def test_undeliverable_leaves_a_note_for_the_agent():
    dispatcher = CollectingDispatcher()
    entities = [{"entity": "error_code", "value": "131026"}]
    events = await ActionWhatsAppDeliveryFailed().run(dispatcher, tracker([user("hi", NOW)], entities=entities), {})
    note = slots_of(events)["whatsapp_delivery_attention"]
    assert dispatcher.messages == []
    assert note["error_code"] == 131026 and "reach_contact_other_channel" in note["recommended_actions"]


async def test_follow_up_nudges_inside_the_window(monkeypatch):
    monkeypatch.setattr(window_actions.time, "time", lambda: NOW + 3600)
    dispatcher = CollectingDispatcher()
    await ActionWhatsAppFollowUp().run(dispatcher, tracker([user("hi", NOW)]), {})
    assert dispatcher.messages[0]["response"] == "utter_follow_up_nudge"
