"""Specification of action_handoff, action_whatsapp_fallback and action_session_start."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    FollowupAction,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff
from actions.handoff import (
    DESK_URL_ENV,
    FALLBACKS_ENV,
    ActionHandoff,
    ActionSessionStart,
    ActionWhatsAppFallback,
    handoff_after_fallbacks,
    post_to_desk,
)
from whatsapp_core import handover
from whatsapp_core.handover import HandoverReason, HandoverState
from whatsapp_core.retry import RetryPolicy
from whatsapp_core.store import OutboxState, WhatsAppStore
from whatsapp_core.store_location import STORE_URL_ENV

DOMAIN_FILE = Path(__file__).resolve().parents[2] / "domain.yml"
CONTACT = "393331234567"


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    return yaml.safe_load(DOMAIN_FILE.read_text(encoding="utf-8"))


@pytest.fixture
def store_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'whatsapp.db'}"
    monkeypatch.setenv(STORE_URL_ENV, url)
    monkeypatch.delenv(FALLBACKS_ENV, raising=False)
    monkeypatch.delenv(DESK_URL_ENV, raising=False)
    return url


@pytest.fixture
def store(store_url):
    opened = WhatsAppStore(store_url, instance_id="test")
    yield opened
    opened.close()


def contact(text: str, intent: str, *, entities=(), at: int | None = None, **whatsapp) -> dict:
    at = at or int(time.time()) - 60
    details = {"message_id": f"wamid.{text}.{at}", "timestamp": at, "type": "text",
               "wa_id": CONTACT, "profile_name": "Giulia", "phone_number_id": "pn", **whatsapp}
    event = UserUttered(text, parse_data={"intent": {"name": intent}, "entities": list(entities)})
    event["metadata"] = {"whatsapp": details}
    event["timestamp"] = at + 1
    return event


def bot(text: str, utter_action: str | None = None) -> dict:
    return BotUttered(text, metadata={"utter_action": utter_action} if utter_action else {})


def tracker_of(events: list[dict], slots: dict | None = None) -> Tracker:
    latest = next(e for e in reversed(events) if e["event"] == "user")
    latest_message = {**latest["parse_data"], "text": latest["text"]}
    return Tracker(CONTACT, slots or {}, latest_message, events, False, None, {}, "action_listen")


async def run(action, events, domain, slots=None) -> tuple[list[dict], list[dict]]:
    dispatcher = CollectingDispatcher()
    result = await action.run(dispatcher, tracker_of(events, slots), domain)
    return result, dispatcher.messages


async def queued(store) -> handover.Handover | None:
    return await store.run(lambda c: handover.latest_handover(c, CONTACT))


# ------------------------------------------------------------------ action_handoff
async def test_asking_for_a_person_tells_queues_and_pauses(store, domain):
    events = [contact("hi", "greet"), bot("Hi!", "utter_greet"),
              contact("I want a human", "request_human")]
    result, messages = await run(ActionHandoff(), events, domain)

    assert [m["response"] for m in messages] == ["utter_handoff"]
    assert result == [SlotSet("whatsapp_handover", "waiting"),
                      SlotSet("whatsapp_handover_reason", "requested"), ConversationPaused()]
    entry = await queued(store)
    assert entry.state is HandoverState.WAITING and entry.reason is HandoverReason.REQUESTED
    assert entry.phone_number_id == "pn"
    summary = entry.summary
    assert summary.contact_name == "Giulia" and summary.masked_number == "***4567"
    assert [t.text for t in summary.last_turns] == ["hi", "Hi!", "I want a human"]
    assert summary.window.open


async def test_yes_to_the_offer_after_unsupported_messages_hands_over_for_that_reason(store, domain):
    events = [contact("/whatsapp_unsupported", "whatsapp_unsupported",
                      type="unsupported", unsupported={"kind": "view_once", "raw": {"x": "<b>"}}),
              bot("Sorry, I still can't read these.", "utter_unsupported_offer_human"),
              contact("yes", "affirm")]
    result, messages = await run(ActionHandoff(), events, domain)
    assert SlotSet("whatsapp_handover_reason", "unsupported_messages") in result
    entry = await queued(store)
    assert entry.reason is HandoverReason.UNSUPPORTED_MESSAGES
    assert entry.summary.unsupported[0]["raw"] == {"x": "<b>"}


async def test_the_button_after_the_unsupported_offer_counts_as_accepting_it(store, domain):
    events = [bot("Sorry, I still can't read these.", "utter_unsupported_offer_human"),
              contact("/request_human", "request_human")]
    result, _ = await run(ActionHandoff(), events, domain)
    assert SlotSet("whatsapp_handover_reason", "unsupported_messages") in result


async def test_yes_to_the_offer_of_help_is_a_request(store, domain):
    events = [contact("my order", "ask_help"), bot("Shall I pass you?", "utter_offer_help"),
              contact("yes please", "affirm")]
    result, _ = await run(ActionHandoff(), events, domain)
    assert SlotSet("whatsapp_handover_reason", "requested") in result


async def test_yes_to_advice_that_offered_no_person_hands_nothing_over(store, domain):
    events = [contact("/whatsapp_unsupported", "whatsapp_unsupported"),
              bot("Please send it again.", "utter_unsupported_resend_new_wording"),
              contact("ok", "affirm")]
    result, messages = await run(ActionHandoff(), events, domain)
    assert result == [] and messages == []
    assert await queued(store) is None


async def test_a_failed_template_hands_over_with_its_reason(store, domain):
    event = UserUttered(
        "EXTERNAL: whatsapp_template_failed",
        parse_data={"intent": {"name": "whatsapp_template_failed"},
                    "entities": [{"entity": "reason", "value": "not_approved"}]},
    )
    result, _ = await run(ActionHandoff(), [contact("hi", "greet"), event], domain)
    assert SlotSet("whatsapp_handover_reason", "template_failed") in result
    entry = await queued(store)
    assert entry.summary.reason_detail == "not_approved"
    assert [t.text for t in entry.summary.last_turns] == ["hi"]


async def test_a_designers_own_rule_hands_over_naming_the_intent(store, domain):
    result, _ = await run(ActionHandoff(), [contact("refund", "ask_refund")], domain)
    assert SlotSet("whatsapp_handover_reason", "other") in result
    assert (await queued(store)).summary.reason_detail == "intent ask_refund"


async def test_the_summary_lists_delivery_failures_from_the_store(store, domain):
    (row,) = await store.enqueue_outbound(
        CONTACT, "pn", CONTACT, [("text", {"type": "text", "text": {"body": "your code"}})]
    )
    await store.finish_outbound(row.id, state=OutboxState.FAILED, wamid=None, attempts=1,
                                error_code=131026, error_title="Message undeliverable")
    await run(ActionHandoff(), [contact("help", "request_human")], domain)
    (failure,) = (await queued(store)).summary.delivery_failures
    assert failure["summary"] == "your code" and failure["failure"]["error_code"] == 131026


async def test_when_the_queue_cannot_be_written_the_bot_stays_on(tmp_path, monkeypatch, domain):
    monkeypatch.setenv(STORE_URL_ENV, f"sqlite:///{tmp_path / 'missing' / 'dir' / 'whatsapp.db'}")
    result, messages = await run(ActionHandoff(), [contact("human", "request_human")], domain)
    assert [m["response"] for m in messages] == ["utter_handoff_unavailable"]
    assert result == []


# ------------------------------------------------------------------- desk webhook
class Desk:
    """A local HTTP endpoint answering the given statuses in turn (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict] = []
        self.received = threading.Event()
        desk = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers["Content-Length"])
                desk.bodies.append(json.loads(self.rfile.read(length)))
                status = desk.statuses.pop(0) if desk.statuses else 200
                self.send_response(status)
                self.end_headers()
                desk.received.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/desk"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def desk_factory():
    desks = []

    def make(statuses=()):
        desks.append(Desk(list(statuses)))
        return desks[-1]

    yield make
    for desk in desks:
        desk.close()


FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.01, max_elapsed=5)


async def test_the_summary_is_posted_to_the_agent_desk(store, domain, monkeypatch, desk_factory):
    desk = desk_factory()
    monkeypatch.setenv(DESK_URL_ENV, desk.url)
    await run(ActionHandoff(), [contact("a human please", "request_human")], domain)
    assert await asyncio.to_thread(desk.received.wait, 10)
    (body,) = desk.bodies
    assert body["conversation_id"] == CONTACT and body["reason"] == "requested"
    assert body["contact"] == {"name": "Giulia", "masked_number": "***4567"}


def test_the_desk_post_is_retried_after_server_errors(desk_factory):
    desk = desk_factory([503, 429])
    sleeps: list[float] = []
    assert post_to_desk(desk.url, {"conversation_id": CONTACT}, retry=FAST, sleep=sleeps.append)
    assert len(desk.bodies) == 3 and len(sleeps) == 2


def test_the_desk_post_is_not_retried_after_a_client_error(desk_factory, caplog):
    desk = desk_factory([400])
    assert not post_to_desk(desk.url, {"conversation_id": CONTACT}, retry=FAST, sleep=lambda s: None)
    assert len(desk.bodies) == 1
    assert "HTTP 400" in caplog.text and CONTACT not in caplog.text


def test_the_desk_post_gives_up_after_its_attempts(desk_factory):
    desk = desk_factory([500] * 10)
    assert not post_to_desk(desk.url, {"conversation_id": CONTACT}, retry=FAST, sleep=lambda s: None)
    assert len(desk.bodies) == FAST.max_attempts


def test_an_unreachable_desk_is_logged_and_not_raised(caplog):
    sleeps: list[float] = []
    assert not post_to_desk("http://127.0.0.1:9/desk", {"conversation_id": CONTACT},
                            retry=FAST, sleep=sleeps.append)
    assert len(sleeps) == FAST.max_attempts - 1
    assert "stays in the agents' queue" in caplog.text


# --------------------------------------------------------- action_whatsapp_fallback
async def test_the_first_misunderstanding_gets_the_default_answer(store, domain):
    result, messages = await run(ActionWhatsAppFallback(), [contact("blah", "nlu_fallback")], domain)
    assert result == [] and [m["response"] for m in messages] == ["utter_default"]


async def test_the_second_misunderstanding_hands_over(store, domain):
    events = [contact("blah", "nlu_fallback"), bot("Sorry?", "utter_default"),
              contact("a joke", "out_of_scope")]
    result, messages = await run(ActionWhatsAppFallback(), events, domain)
    assert result == [FollowupAction("action_handoff")] and messages == []
    result, _ = await run(ActionHandoff(), events, domain)
    assert SlotSet("whatsapp_handover_reason", "not_understood") in result
    assert (await queued(store)).summary.reason_detail == "2 message(s) not understood"


async def test_the_number_of_misunderstandings_is_a_setting(store, domain, monkeypatch):
    monkeypatch.setenv(FALLBACKS_ENV, "3")
    events = [contact("blah", "nlu_fallback"), contact("a joke", "out_of_scope")]
    result, messages = await run(ActionWhatsAppFallback(), events, domain)
    assert result == [] and [m["response"] for m in messages] == ["utter_default"]


async def test_misunderstandings_count_again_after_a_hand_back(store, domain):
    events = [contact("blah", "nlu_fallback"), ConversationResumed(),
              contact("whatever", "nlu_fallback")]
    result, messages = await run(ActionWhatsAppFallback(), events, domain)
    assert result == [] and [m["response"] for m in messages] == ["utter_default"]


@pytest.mark.parametrize(("raw", "expected"), [(None, 2), ("", 2), ("4", 4), ("0", 2), ("x", 2)])
def test_handoff_after_fallbacks_reads_the_environment(raw, expected):
    environ = {} if raw is None else {FALLBACKS_ENV: raw}
    assert handoff_after_fallbacks(environ) == expected


# ------------------------------------------------------------ action_session_start
SESSION_EVENTS = [
    ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
    {**SlotSet("media_type", "image"), "metadata": {"by": "test"}},
    SlotSet("whatsapp_handover", "waiting"),
    SlotSet("whatsapp_handover_reason", "requested"),
    ConversationPaused(),
    SlotSet("session_started_metadata", {"x": 1}),
]


async def test_a_new_session_of_a_handed_over_conversation_stays_paused(domain):
    slots = {"whatsapp_handover": "with_agent", "media_type": "image"}
    tracker = Tracker(CONTACT, slots, {}, SESSION_EVENTS, True, None, {}, "action_listen")
    events = await ActionSessionStart().run(CollectingDispatcher(), tracker, domain)
    assert events == [
        SessionStarted(),
        {**SlotSet("media_type", "image"), "metadata": {"by": "test"}},
        SlotSet("whatsapp_handover", "waiting"),
        SlotSet("whatsapp_handover_reason", "requested"),
        SlotSet("session_started_metadata", {"x": 1}),
        ConversationPaused(),
        ActionExecuted("action_listen"),
    ]


async def test_a_new_session_after_a_hand_back_is_not_paused(domain):
    events = [*SESSION_EVENTS, ConversationResumed(), SlotSet("whatsapp_handover", None)]
    tracker = Tracker(CONTACT, {"whatsapp_handover": None}, {}, events, False, None, {}, None)
    started = await ActionSessionStart().run(CollectingDispatcher(), tracker, domain)
    assert ConversationPaused() not in started
    assert started[0] == SessionStarted() and started[-1] == ActionExecuted("action_listen")


async def test_without_carry_over_only_the_handover_slots_are_kept(domain):
    no_carry = {**domain, "session_config": {"carry_over_slots_to_new_session": False}}
    tracker = Tracker(CONTACT, {"whatsapp_handover": "waiting"}, {}, SESSION_EVENTS, True, None,
                      {}, None)
    started = await ActionSessionStart().run(CollectingDispatcher(), tracker, no_carry)
    assert started == [
        SessionStarted(),
        SlotSet("whatsapp_handover", "waiting"),
        SlotSet("whatsapp_handover_reason", "requested"),
        ConversationPaused(),
        ActionExecuted("action_listen"),
    ]


def test_the_domain_declares_what_the_actions_use(domain):
    actions = [a if isinstance(a, str) else next(iter(a)) for a in domain["actions"]]
    for name in (handoff.HANDOFF_ACTION, handoff.FALLBACK_ACTION, handoff.SESSION_START_ACTION):
        assert name in actions
    for response in (handoff.HANDOFF_RESPONSE, handoff.UNAVAILABLE_RESPONSE,
                     handoff.FALLBACK_RESPONSE, "utter_handback"):
        assert response in domain["responses"]
    assert domain["slots"]["whatsapp_handover"]["values"] == ["waiting", "with_agent"]
    assert {"whatsapp_template_failed", "whatsapp_handback"} <= set(domain["intents"])
    assert "reason" in domain["entities"]
