"""Specification of action_whatsapp_unsupported_reply (actions/unsupported_reply.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.unsupported_reply import (
    HANDOFF_AFTER_ENV,
    ActionWhatsAppUnsupportedReply,
    choose_response,
    handoff_after,
    recommended_action_for,
    unsupported_streak,
)

DOMAIN_FILE = Path(__file__).resolve().parents[2] / "domain.yml"

EXPECTED_ACTION = {
    "ephemeral": "disable_ephemeral_and_resend",
    "view_once": "disable_ephemeral_and_resend",
    "coexistence": "resend_from_primary_device",
    "group": "resend_from_primary_device",
    "oversized_media": "send_smaller_file_or_link",
    "edited": "resend_new_wording",
    "deleted": "share_screenshot_or_text",
    "poll": "share_screenshot_or_text",
    "pin": "share_screenshot_or_text",
    "group_invite": "share_screenshot_or_text",
    "gif": "share_screenshot_or_text",
    "link_preview": "share_screenshot_or_text",
    "product": "share_screenshot_or_text",
    "interactive": "share_screenshot_or_text",
    "reaction": "share_screenshot_or_text",
    "media_placeholder": "share_screenshot_or_text",
    "unknown": "share_screenshot_or_text",
}


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    """The project's domain.yml, as the action server hands it to actions."""
    return yaml.safe_load(DOMAIN_FILE.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def default_handoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HANDOFF_AFTER_ENV, raising=False)


def unsupported(kind: str | None, recommended_action: str | None = None) -> dict[str, Any]:
    """A user event as Rasa records `/whatsapp_unsupported{"unsupported_kind": kind}`."""
    entities = [] if kind is None else [{"entity": "unsupported_kind", "value": kind}]
    event = UserUttered(
        f'/whatsapp_unsupported{{"unsupported_kind": "{kind}"}}',
        parse_data={"intent": {"name": "whatsapp_unsupported"}, "entities": entities},
    )
    if recommended_action is not None:
        event["metadata"] = {
            "whatsapp": {"unsupported": {"recommended_action": recommended_action}}
        }
    return event


def said(intent: str) -> dict[str, Any]:
    return UserUttered(intent, parse_data={"intent": {"name": intent}, "entities": []})


def after_each_message(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Interleave what Rasa logs between user messages (listen, action, bot)."""
    out: list[dict[str, Any]] = [ActionExecuted("action_session_start"), SessionStarted()]
    for event in events:
        out += [ActionExecuted("action_listen"), event]
        out += [ActionExecuted("action_whatsapp_unsupported_reply"), BotUttered("...")]
    return out[:-2]  # the last message is being answered right now


def tracker_for(events: list[dict[str, Any]]) -> Tracker:
    latest = next(e for e in reversed(events) if e["event"] == "user")
    latest_message = dict(latest["parse_data"], text=latest["text"])
    latest_message["metadata"] = latest.get("metadata") or {}
    return Tracker("contact-1", {}, latest_message, events, False, None, {}, "action_listen")


async def run_action(events: list[dict[str, Any]], domain: dict[str, Any]):
    dispatcher = CollectingDispatcher()
    result = await ActionWhatsAppUnsupportedReply().run(
        dispatcher, tracker_for(after_each_message(events)), domain
    )
    return [m["response"] for m in dispatcher.messages], result


# --- the table --------------------------------------------------------------------


def test_every_kind_of_the_vocabulary_has_its_recommended_action():
    assert {kind: recommended_action_for(kind) for kind in EXPECTED_ACTION} == EXPECTED_ACTION


def test_a_kind_meta_adds_tomorrow_gets_screenshot_or_text():
    assert recommended_action_for("hologram") == "share_screenshot_or_text"


def test_domain_has_a_response_for_every_recommended_action_and_the_offer(domain):
    needed = {f"utter_unsupported_{a}" for a in EXPECTED_ACTION.values()}
    needed.add("utter_unsupported_offer_human")
    assert needed <= set(domain["responses"])


# --- one reply per kind -----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EXPECTED_ACTION))
async def test_each_kind_gets_the_response_of_its_recommended_action(kind, domain):
    responses, _ = await run_action([unsupported(kind)], domain)
    assert responses == [f"utter_unsupported_{EXPECTED_ACTION[kind]}"]


async def test_message_without_kind_is_treated_as_unknown(domain):
    responses, _ = await run_action([unsupported(None)], domain)
    assert responses == ["utter_unsupported_share_screenshot_or_text"]


async def test_kind_from_metadata_when_the_command_has_no_entity(domain):
    event = unsupported(None, recommended_action=None)
    event["metadata"] = {"whatsapp": {"unsupported": {"kind": "edited"}}}
    responses, _ = await run_action([event], domain)
    assert responses == ["utter_unsupported_resend_new_wording"]


async def test_kind_is_passed_to_the_response_for_its_text(domain):
    dispatcher = CollectingDispatcher()
    tracker = tracker_for(after_each_message([unsupported("gif")]))
    await ActionWhatsAppUnsupportedReply().run(dispatcher, tracker, domain)
    assert dispatcher.messages[0]["unsupported_kind"] == "gif"


# --- metadata and per-kind responses ----------------------------------------------


async def test_recommended_action_in_metadata_wins_over_the_table(domain):
    responses, _ = await run_action(
        [unsupported("gif", recommended_action="send_smaller_file_or_link")], domain
    )
    assert responses == ["utter_unsupported_send_smaller_file_or_link"]


async def test_metadata_action_without_a_response_falls_back_to_the_table(domain):
    responses, _ = await run_action(
        [unsupported("edited", recommended_action="teleport_the_message")], domain
    )
    assert responses == ["utter_unsupported_resend_new_wording"]


async def test_response_written_for_one_kind_is_preferred(domain):
    custom = dict(domain, responses=dict(domain["responses"]))
    custom["responses"]["utter_unsupported_kind_poll"] = [{"text": "Polls can't be shown."}]
    responses, _ = await run_action(
        [unsupported("poll", recommended_action="share_screenshot_or_text")], custom
    )
    assert responses == ["utter_unsupported_kind_poll"]


def test_without_domain_responses_the_action_level_response_is_used():
    assert choose_response("poll", 1, {}) == "utter_unsupported_share_screenshot_or_text"


# --- streak and handoff -----------------------------------------------------------


async def test_first_and_second_in_a_row_repeat_the_recommendation(domain):
    first, _ = await run_action([unsupported("ephemeral")], domain)
    second, _ = await run_action([unsupported("ephemeral")] * 2, domain)
    assert first == second == ["utter_unsupported_disable_ephemeral_and_resend"]


async def test_third_in_a_row_offers_a_person_instead(domain):
    responses, events = await run_action([unsupported("ephemeral")] * 3, domain)
    assert responses == ["utter_unsupported_offer_human"]
    assert events == [SlotSet("whatsapp_unsupported_streak", 3.0)]


async def test_fourth_in_a_row_still_offers_a_person_once(domain):
    responses, _ = await run_action([unsupported("gif")] * 4, domain)
    assert responses == ["utter_unsupported_offer_human"]


async def test_another_message_in_between_resets_the_streak(domain):
    history = [unsupported("gif"), unsupported("gif"), said("greet"), unsupported("gif")]
    responses, events = await run_action(history, domain)
    assert responses == ["utter_unsupported_share_screenshot_or_text"]
    assert events == [SlotSet("whatsapp_unsupported_streak", 1.0)]


async def test_handoff_threshold_comes_from_the_environment(domain, monkeypatch):
    monkeypatch.setenv(HANDOFF_AFTER_ENV, "2")
    responses, _ = await run_action([unsupported("edited")] * 2, domain)
    assert responses == ["utter_unsupported_offer_human"]


@pytest.mark.parametrize("raw", ["", "zero", "0", "-4"])
def test_invalid_handoff_setting_falls_back_to_three(raw):
    assert handoff_after({HANDOFF_AFTER_ENV: raw}) == 3


def test_streak_counts_unsupported_messages_at_the_end_only():
    history = [unsupported("gif"), said("thank"), unsupported("pin"), unsupported("poll")]
    assert unsupported_streak(after_each_message(history)) == 2


def test_streak_is_zero_after_another_message():
    assert unsupported_streak(after_each_message([unsupported("gif"), said("greet")])) == 0


def test_streak_stops_at_a_new_session():
    events = after_each_message([unsupported("gif"), unsupported("gif")])
    events[-1:-1] = [ActionExecuted("action_session_start"), SessionStarted()]
    assert unsupported_streak(events) == 1


def test_action_module_does_not_import_rasa():
    source = (DOMAIN_FILE.parent / "actions" / "unsupported_reply.py").read_text()
    lines = [line.strip() for line in source.splitlines()]
    assert not [line for line in lines if line.startswith(("import rasa", "from rasa "))]
    assert not [line for line in lines if line.startswith("from rasa.")]
