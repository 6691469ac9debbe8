"""Handover end to end: real `rasa run` (with the agent inbox on), `rasa run actions` and the
Cloud API simulator. A contact asks for a person, is told and queued; the bot stays quiet
while the agent replies through the API; after the hand-back the bot answers again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from simulator.process import SimulatorProcess
from tests.e2e.conftest import running_bot

pytestmark = pytest.mark.e2e

AGENT_TOKEN = "e2e-agent-token"


class Inbox:
    """The agent API of the running server."""

    def __init__(self, rasa_url: str) -> None:
        self.page = f"{rasa_url}/webhooks/whatsapp/agent/"
        self.base = f"{self.page}api"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {AGENT_TOKEN}"

    def get(self, path: str) -> dict:
        response = self.session.get(f"{self.base}/{path}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict | None = None, expect: int = 200) -> dict:
        response = self.session.post(f"{self.base}/{path}", json=body, timeout=30)
        assert response.status_code == expect, response.text
        return response.json()

    def queued(self, contact: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            entries = [c for c in self.get("conversations")["conversations"]
                       if c["conversation_id"] == contact]
            if entries or time.monotonic() > deadline:
                assert entries, f"{contact} never reached the queue"
                return entries[0]
            time.sleep(0.2)


@contextlib.contextmanager
def bot_with_inbox(tmp: Path) -> Iterator[tuple[SimulatorProcess, Inbox]]:
    """Simulator, action server and rasa run with an agent token, as processes."""
    with running_bot(tmp, extra_credentials=f"  agent_token: {AGENT_TOKEN}\n") as running:
        yield running.sim, Inbox(running.rasa_url)


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    with bot_with_inbox(tmp_path_factory.mktemp("handover")) as running:
        yield running


def texts(sim, contact: str) -> list[str]:
    out = []
    for message in sim.client.messages(contact):
        payload = message["payload"]
        if payload["type"] == "text":
            out.append(payload["text"]["body"])
        elif payload["type"] == "interactive":
            out.append(payload["interactive"]["body"]["text"])
        else:
            out.append(payload["type"])
    return out


def test_a_person_takes_over_and_hands_back(desk):
    sim, inbox = desk
    contact = "393339000001"
    sim.client.inbound_text(contact, "hello", name="Giulia")
    sim.client.wait_for_messages(contact, 1)

    sim.client.inbound_text(contact, "I want to talk to a human")
    sim.client.wait_for_messages(contact, 2)
    assert texts(sim, contact)[1].startswith("I'm passing you to a member of our team")
    entry = inbox.queued(contact)
    assert entry["state"] == "waiting" and entry["reason"] == "requested"
    assert entry["contact_name"] == "Giulia" and entry["masked_number"] == "***0001"

    sim.client.inbound_text(contact, "are you there?")
    deadline = time.monotonic() + 10
    timeline: list[dict] = []
    while time.monotonic() < deadline:
        timeline = inbox.get(f"conversations/{contact}")["timeline"]
        if any(e["summary"] == "are you there?" and e["state"] == "done" for e in timeline):
            break
        time.sleep(0.2)
    assert any(e["summary"] == "are you there?" and e["state"] == "done" for e in timeline)
    time.sleep(1.0)
    assert len(sim.client.messages(contact)) == 2, texts(sim, contact)  # the bot kept quiet

    taken = inbox.post(f"conversations/{contact}/take", {"agent": "Ada"})["handover"]
    assert taken["state"] == "with_agent" and taken["agent"] == "Ada"
    inbox.post(f"conversations/{contact}/messages", {"text": "Hi Giulia, Ada here."}, expect=202)
    sim.client.wait_for_messages(contact, 3)
    assert texts(sim, contact)[2] == "Hi Giulia, Ada here."

    sim.client.inbound_text(contact, "great, thanks Ada")
    time.sleep(1.5)
    assert len(sim.client.messages(contact)) == 3  # still the agent's conversation

    closed = inbox.post(f"conversations/{contact}/handback")["handover"]
    assert closed["state"] == "handed_back"
    sim.client.wait_for_messages(contact, 4)
    assert texts(sim, contact)[3] == "I'm back — anything else I can help with?"
    assert inbox.get("conversations")["conversations"] == []

    sim.client.inbound_text(contact, "bye")
    sim.client.wait_for_messages(contact, 5)
    assert texts(sim, contact)[4] == "Goodbye, and thanks for getting in touch!"


def test_misunderstood_twice_the_contact_is_handed_over(desk):
    sim, inbox = desk
    contact = "393339000002"
    sim.client.inbound_text(contact, "xqzv blorp", name="Marco")
    sim.client.wait_for_messages(contact, 1)
    assert texts(sim, contact)[0].startswith("Sorry, I didn't get that")
    sim.client.inbound_text(contact, "wqpz flurb")
    sim.client.wait_for_messages(contact, 2)
    assert texts(sim, contact)[1].startswith("I'm passing you to a member of our team")
    entry = inbox.queued(contact)
    assert entry["reason"] == "not_understood"
    summary = inbox.get(f"conversations/{contact}")["summary"]
    assert [t["text"] for t in summary["last_turns"] if t["speaker"] == "contact"] == [
        "xqzv blorp", "wqpz flurb"
    ]
