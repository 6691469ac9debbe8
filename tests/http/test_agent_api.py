"""The agent API over real HTTP: a Sanic server with the channel, the Cloud API simulator
in-process as Meta, and a stand-in for Rasa's agent (real tracker and lock stores).

Contact messages arrive as Meta sends them: the simulator posts signed webhooks to the
channel. Conversations are put in the queue as action_handoff does it (its SQL functions)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered

from simulator.app import create_app
from simulator.config import SimulatorConfig
from tests.http.conftest import (
    PHONE_NUMBER_ID,
    SECRET,
    credentials,
    free_port,
    start_server,
    stop_server,
)
from whatsapp_core import handover, ledger
from whatsapp_core.handover import HandoverReason, build_summary
from whatsapp_core.signature import sign

TOKEN = "agent-token-Zq8"
ACCESS_TOKEN = "test-access-token"
CONTACT = "393331234567"
DOMAIN = Domain.load(str(Path(__file__).resolve().parents[2] / "domain.yml"))


class FakeProcessor:
    def __init__(self, agent: FakeRasaAgent) -> None:
        self._agent = agent

    async def fetch_tracker_and_update_session(self, sender_id, output_channel=None, metadata=None):
        return await self._agent.tracker_store.get_or_create_tracker(sender_id)


class FakeRasaAgent:
    """What the API uses of ``rasa.core.agent.Agent``; a triggered intent answers once
    through the given output channel, as the bot's rule would."""

    def __init__(self) -> None:
        self.domain = DOMAIN
        self.tracker_store = InMemoryTrackerStore(DOMAIN)
        self.lock_store = InMemoryLockStore()
        self.processor = FakeProcessor(self)
        self.triggered: list[str] = []

    def is_ready(self) -> bool:
        return True

    async def trigger_intent(self, intent_name, entities, output_channel, tracker) -> None:
        self.triggered.append(intent_name)
        tracker.update(UserUttered.create_external(intent_name, entities), self.domain)
        await output_channel.send_text_message(tracker.sender_id, "I'm back")
        await self.tracker_store.save(tracker)

    async def tracker(self, sender_id: str):
        return await self.tracker_store.retrieve(sender_id)


@dataclass
class Inbox:
    channel: Any
    sim: TestClient
    agent: FakeRasaAgent
    session: aiohttp.ClientSession
    api_base: str
    contacts: dict[str, str] = field(default_factory=dict)

    async def api(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
                  headers: dict | None = None) -> tuple[int, Any]:
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, f"{self.api_base}/{path}", json=body, headers=headers
        ) as response:
            text = await response.text()
            self.last_headers = response.headers
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def inbound(self, contact: str, name: str = "Giulia", **spec) -> dict:
        spec.setdefault("type", "text")
        async with self.sim.post("/_sim/inbound", json={"from": contact, "name": name, **spec}) as r:
            body = await r.json()
            assert r.status == 200 and body["webhook_status"] == 200, body
        await self.channel.settle()
        return body

    async def queue(self, contact: str, reason=HandoverReason.REQUESTED, name: str = "Giulia"):
        """Queue the conversation as action_handoff does."""
        event = {"event": "user", "text": "a person please", "timestamp": time.time(),
                 "metadata": {"whatsapp": {"timestamp": int(time.time()) - 5, "type": "text",
                                           "profile_name": name, "wa_id": contact}}}
        summary = build_summary(contact, [event], reason=reason, now=time.time())
        store = self.channel.channel._runtime.store
        return await store.run(
            lambda c: handover.enqueue(c, summary, phone_number_id=PHONE_NUMBER_ID)
        )

    async def sent_to(self, contact: str) -> list[dict]:
        async with self.sim.get("/_sim/messages", params={"to": contact}) as r:
            return (await r.json())["messages"]

    @property
    def store(self):
        return self.channel.channel._runtime.store


async def open_inbox(tmp_path, **overrides) -> tuple[Inbox, Any, TestClient]:
    sim_port = free_port()
    creds = credentials(tmp_path, api_base_url=f"http://127.0.0.1:{sim_port}", **overrides)
    running, server = await start_server(creds)
    agent = FakeRasaAgent()
    server.app.ctx.agent = agent
    sim_app = create_app(
        SimulatorConfig(
            webhook_url=f"{running.url}/webhooks/whatsapp/webhook",
            app_secret=SECRET,
            access_token=ACCESS_TOKEN,
            status_delay_seconds=0.0,
            webhook_retry_base_seconds=0.01,
            webhook_max_attempts=2,
        )
    )
    sim = TestClient(TestServer(sim_app, host="127.0.0.1", port=sim_port))
    await sim.start_server()
    inbox = Inbox(running, sim, agent, running.session,
                  f"{running.url}/webhooks/whatsapp/agent/api")
    if overrides.get("agent_token"):
        assert (await inbox.api("GET", "conversations"))[0] == 200  # starts the channel
    return inbox, server, sim


@pytest.fixture
async def inbox(tmp_path):
    opened, server, sim = await open_inbox(tmp_path, agent_token=TOKEN)
    yield opened
    await sim.close()
    await stop_server(opened.channel, server)


async def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def envelope(contact: str, message: dict, name: str = "Giulia") -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": contact}],
        "messages": [message],
    }
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "102290129340398",
                                  "changes": [{"field": "messages", "value": value}]}]}).encode()


# ------------------------------------------------------------------------ access
ROUTES = [
    ("GET", "conversations"),
    ("GET", f"conversations/{CONTACT}"),
    ("POST", f"conversations/{CONTACT}/take"),
    ("POST", f"conversations/{CONTACT}/messages"),
    ("GET", f"conversations/{CONTACT}/templates"),
    ("POST", f"conversations/{CONTACT}/templates"),
    ("POST", f"conversations/{CONTACT}/templates/preview"),
    ("POST", f"conversations/{CONTACT}/handback"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_api_route_needs_the_agent_token(inbox, method, path):
    await inbox.queue(CONTACT)
    assert (await inbox.api(method, path, {}, token=None))[0] == 401
    assert (await inbox.api(method, path, {}, token="wrong"))[0] == 401
    assert (await inbox.api(method, path, {}, token=TOKEN + "x"))[0] == 401
    status, body = await inbox.api(method, path, {}, headers={"Authorization": TOKEN}, token=None)
    assert status == 401 and body["error"] == "unauthorized"


async def test_the_token_is_read_from_the_authorization_header_only(inbox):
    url = f"{inbox.api_base}/conversations"
    async with inbox.session.get(url, params={"token": TOKEN}) as response:
        assert response.status == 401
    async with inbox.session.get(url, headers={"Cookie": f"agent_token={TOKEN}"}) as response:
        assert response.status == 401
    assert (await inbox.api("GET", "conversations"))[0] == 200


async def test_the_token_never_reaches_the_logs(inbox, caplog):
    await inbox.api("GET", "conversations")
    await inbox.api("GET", "conversations", token="attacker-guess")
    assert TOKEN not in caplog.text and "attacker-guess" not in caplog.text


async def test_without_an_agent_token_there_are_no_agent_routes(tmp_path):
    opened, server, sim = await open_inbox(tmp_path)
    try:
        for path in ("conversations", f"conversations/{CONTACT}/handback"):
            assert (await opened.api("GET", path))[0] == 404
            assert (await opened.api("POST", path))[0] in (404, 405)
        url = f"{opened.channel.url}/webhooks/whatsapp/agent/"
        async with opened.session.get(url) as response:
            assert response.status == 404
    finally:
        await sim.close()
        await stop_server(opened.channel, server)


async def test_the_page_is_served_with_a_strict_content_security_policy(inbox):
    base = f"{inbox.channel.url}/webhooks/whatsapp/agent/"
    async with inbox.session.get(base) as response:
        page = await response.text()
        csp = response.headers["Content-Security-Policy"]
        assert response.status == 200 and "text/html" in response.headers["Content-Type"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp
    assert '<script src="app.js"' in page and "<script>" not in page and "style=" not in page
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        async with inbox.session.get(base + name) as response:
            assert response.status == 200 and kind in response.headers["Content-Type"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    async with inbox.session.get(base.rstrip("/"), allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].endswith("/agent/")


def test_the_page_script_never_writes_html():
    script = (Path(__file__).resolve().parents[2] / "connectors/agent_page/app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


# ----------------------------------------------------------------- queue and view
async def test_the_queue_lists_waiting_conversations_with_window_and_last_message(inbox):
    await inbox.inbound(CONTACT, text="where is my order?")
    await inbox.queue(CONTACT)
    status, body = await inbox.api("GET", "conversations")
    assert status == 200
    (entry,) = body["conversations"]
    assert entry["conversation_id"] == CONTACT and entry["state"] == "waiting"
    assert entry["reason"] == "requested" and entry["contact_name"] == "Giulia"
    assert entry["masked_number"] == "***4567"
    assert entry["window"]["open"] and 23 * 3600 < entry["window"]["seconds_left"] <= 24 * 3600
    assert entry["last_message"]["text"] == "where is my order?"
    assert inbox.last_headers["Cache-Control"] == "no-store"


async def test_a_conversation_shows_summary_window_and_timeline_with_raw_json(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.inbound(CONTACT, type="unsupported", unsupported_type="view_once")
    await inbox.queue(CONTACT, HandoverReason.UNSUPPORTED_MESSAGES)
    status, body = await inbox.api("GET", f"conversations/{CONTACT}")
    assert status == 200
    assert body["handover"]["reason"] == "unsupported_messages"
    assert body["summary"]["contact"]["masked_number"] == "***4567"
    assert body["window"]["open"]
    texts = [e["summary"] for e in body["timeline"]]
    assert texts[0] == "hi"
    unsupported = body["timeline"][1]["unsupported"]
    assert unsupported["kind"] == "view_once" and unsupported["raw"]["type"] == "unsupported"


async def test_an_unknown_conversation_is_404(inbox):
    status, body = await inbox.api("GET", "conversations/15550000000")
    assert status == 404 and body["error"] == "not_found"


# ------------------------------------------------------------------------ actions
async def test_take_assigns_the_agent_and_tells_the_bot(inbox):
    await inbox.queue(CONTACT)
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/take", {"agent": "Ada"})
    assert status == 200 and body["handover"]["state"] == "with_agent"
    assert body["handover"]["agent"] == "Ada"
    tracker = await inbox.agent.tracker(CONTACT)
    assert tracker.get_slot("whatsapp_handover") == "with_agent"


async def test_take_needs_an_agent_name(inbox):
    await inbox.queue(CONTACT)
    for body in ({}, {"agent": ""}, {"agent": "x" * 101}, ["Ada"]):
        status, answer = await inbox.api("POST", f"conversations/{CONTACT}/take", body)
        assert status == 400 and answer["error"] == "invalid_body"


async def test_a_reply_goes_out_through_the_channel_and_into_the_tracker(inbox):
    await inbox.inbound(CONTACT, text="hello?")
    await inbox.queue(CONTACT)
    await inbox.api("POST", f"conversations/{CONTACT}/take", {"agent": "Ada"})
    text = "Hi Giulia, I'm Ada. <b>Let me check</b>"
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/messages", {"text": text})
    assert status == 202 and len(body["queued"]) == 1
    sent = await wait_for(lambda: inbox.sent_to(CONTACT))
    assert [m["payload"]["text"]["body"] for m in sent] == [text]
    (record,) = await inbox.store.outbound_for(CONTACT)
    assert record.kind == "text" and record.payload["to"] == CONTACT
    tracker = await inbox.agent.tracker(CONTACT)
    bot = [e for e in tracker.events if e.type_name == "bot"]
    assert bot[-1].text == text and bot[-1].metadata == {"agent": True, "agent_name": "Ada"}


async def test_a_reply_outside_the_window_is_refused_with_the_reason(inbox):
    old = int(time.time()) - 25 * 3600
    message = {"from": CONTACT, "id": "wamid.old", "timestamp": str(old), "type": "text",
               "text": {"body": "hello from yesterday"}}
    body = envelope(CONTACT, message)
    assert (await inbox.channel.post(body, sign(body, SECRET)))[0] == 200
    await inbox.channel.settle()
    await inbox.queue(CONTACT)
    status, answer = await inbox.api("POST", f"conversations/{CONTACT}/messages", {"text": "hi"})
    assert status == 409 and answer["error"] == "window_closed"
    assert "24-hour" in answer["detail"] and answer["window"]["open"] is False
    assert await inbox.store.outbound_for(CONTACT) == []


async def test_replies_need_a_conversation_in_the_queue(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    await inbox.api("POST", f"conversations/{CONTACT}/handback")
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/messages", {"text": "hi"})
    assert status == 409 and body["error"] == "not_handed_over"
    status, body = await inbox.api("POST", "conversations/15550000000/messages", {"text": "hi"})
    assert status == 404


async def test_an_empty_or_oversized_reply_is_refused(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    for text in ("", "   ", "x" * 4097, 42):
        status, body = await inbox.api("POST", f"conversations/{CONTACT}/messages", {"text": text})
        assert status == 400
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/messages", "not an object")
    assert status == 400 and body["error"] == "invalid_body"


async def test_hand_back_resumes_the_bot_and_triggers_the_handback_intent(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    await inbox.api("POST", f"conversations/{CONTACT}/take", {"agent": "Ada"})
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/handback")
    assert status == 200 and body["handover"]["state"] == "handed_back"
    assert inbox.agent.triggered == ["whatsapp_handback"]
    tracker = await inbox.agent.tracker(CONTACT)
    assert not tracker.is_paused()
    assert tracker.get_slot("whatsapp_handover") is None
    assert tracker.get_slot("whatsapp_handover_reason") is None
    # Rasa ran no action_listen while paused: the hand-back adds one before the intent.
    assert [e.type_name for e in tracker.events][-5:] == ["resume", "slot", "slot", "action", "user"]
    sent = await wait_for(lambda: inbox.sent_to(CONTACT))
    assert [m["payload"]["text"]["body"] for m in sent] == ["I'm back"]
    assert (await inbox.api("GET", "conversations"))[1]["conversations"] == []
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/handback")
    assert status == 409 and body["error"] == "not_handed_over"


async def test_state_changes_wait_for_the_rasa_model(inbox):
    await inbox.queue(CONTACT)
    inbox.agent.is_ready = lambda: False
    for path, body in (("take", {"agent": "Ada"}), ("messages", {"text": "hi"}), ("handback", None)):
        status, answer = await inbox.api("POST", f"conversations/{CONTACT}/{path}", body)
        assert status == 503 and answer["error"] == "bot_not_ready"


# ---------------------------------------------------------------------- templates
async def top_up(inbox, amount: str) -> None:
    await inbox.store.run(lambda c: ledger.top_up(c, ledger.parse_amount(amount)))


def option(body: dict, name: str, language: str) -> dict:
    return next(t for t in body["templates"] if (t["name"], t["language"]) == (name, language))


async def test_templates_are_listed_with_previews_prices_and_balance(inbox):
    await inbox.inbound(CONTACT, text="hi", name="Giulia")
    await inbox.queue(CONTACT)
    await top_up(inbox, "1.00")
    status, body = await inbox.api("GET", f"conversations/{CONTACT}/templates")
    assert status == 200
    assert body["contact_name"] == "Giulia"
    assert body["balance"]["available"]["amount"] == "1.00"
    follow_up = option(body, "follow_up", "it")
    assert follow_up["sendable"] and follow_up["refusal"] is None
    assert follow_up["text"].startswith("Ciao Giulia, vorrei seguire")
    (parameter,) = follow_up["parameters"]
    assert parameter == {"key": "1", "value": "Giulia", "source": "contact.name",
                         "used_fallback": False, "edited": False, "missing": False}
    assert follow_up["price"] == {"amount": "0.00", "micro": 0, "currency": "USD"}  # utility, window open
    assert follow_up["affordable"]
    sale = option(body, "summer_sale", "en")
    assert sale["price"]["amount"] == "0.0691" and sale["category"] == "MARKETING"  # Italy
    reminder = option(body, "appointment_reminder", "en")
    assert not reminder["sendable"] and reminder["refusal"]["reason"] == "missing_parameter"
    assert [p["key"] for p in reminder["parameters"] if p["missing"]] == ["date", "time"]
    assert "{{date}}" in reminder["text"]


async def test_a_template_not_approved_is_listed_with_its_refusal(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    status, body = await inbox.api("GET", f"conversations/{CONTACT}/templates")
    refused = [t for t in body["templates"] if t["status"] != "APPROVED"]
    assert refused and all(t["refusal"]["reason"] == "not_approved" for t in refused)
    name, language = refused[0]["name"], refused[0]["language"]
    status, answer = await inbox.api("POST", f"conversations/{CONTACT}/templates",
                                     {"name": name, "language": language})
    assert status == 409 and answer["error"] == "not_approved"


async def test_the_preview_applies_the_agents_values(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    status, body = await inbox.api(
        "POST", f"conversations/{CONTACT}/templates/preview",
        {"name": "appointment_reminder", "language": "en",
         "parameters": {"date": "Monday\n3 June", "time": "10:00"}},
    )
    assert status == 200 and body["sendable"]
    assert body["text"] == "Hi Giulia, your appointment is on Monday 3 June at 10:00."
    edited = {p["key"] for p in body["parameters"] if p["edited"]}
    assert edited == {"date", "time"}


async def test_a_template_is_sent_through_the_channel_and_charged_to_the_ledger(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    await top_up(inbox, "1.00")
    status, body = await inbox.api(
        "POST", f"conversations/{CONTACT}/templates",
        {"name": "summer_sale", "language": "en", "parameters": {"1": "Giulia B."}},
    )
    assert status == 202, body
    assert body["text"].startswith("Hi Giulia B., our summer sale")
    assert body["price"]["amount"] == "0.0691"
    sent = await wait_for(lambda: inbox.sent_to(CONTACT))
    template = sent[0]["payload"]["template"]
    assert template["name"] == "summer_sale"
    assert template["components"][1]["parameters"][0]["text"] == "Giulia B."
    (record,) = await inbox.store.outbound_for(CONTACT)
    assert record.kind == "template" and [record.id] == body["queued"]

    async def held_for_it():
        entries = await inbox.store.run(ledger.recent_entries)
        return [e for e in entries if e.kind is ledger.EntryKind.RESERVATION
                and e.outbox_id == str(record.id)]

    (reservation,) = await wait_for(held_for_it)
    assert reservation.amount == ledger.parse_amount("0.0691")
    balance = await inbox.store.run(ledger.balance)
    assert balance.available == ledger.parse_amount("0.9309")
    tracker = await inbox.agent.tracker(CONTACT)
    bot = [e for e in tracker.events if e.type_name == "bot"][-1]
    assert bot.text == body["text"]
    assert bot.metadata["template"] == {"name": "summer_sale", "language": "en"}


async def test_a_template_beyond_the_balance_is_refused_with_402(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/templates",
                                   {"name": "summer_sale", "language": "en"})
    assert status == 402 and body["error"] == "insufficient_balance"
    assert body["price"]["amount"] == "0.0691" and body["available"]["amount"] == "0.00"
    assert await inbox.store.outbound_for(CONTACT) == []


async def test_a_template_with_a_missing_parameter_is_refused_naming_it(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/templates",
                                   {"name": "appointment_reminder", "language": "en",
                                    "parameters": {"date": "Monday"}})
    assert status == 409 and body["error"] == "missing_parameter"
    assert "time" in body["detail"]


async def test_unknown_templates_and_parameters_are_refused(inbox):
    await inbox.inbound(CONTACT, text="hi")
    await inbox.queue(CONTACT)
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/templates",
                                   {"name": "nope", "language": "en"})
    assert status == 404 and body["error"] == "no_such_template"
    status, body = await inbox.api("POST", f"conversations/{CONTACT}/templates",
                                   {"name": "follow_up", "language": "en",
                                    "parameters": {"2": "extra"}})
    assert status == 400 and body["error"] == "unknown_parameter"
