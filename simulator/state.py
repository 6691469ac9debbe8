"""What the simulated WhatsApp side remembers: contacts, windows, messages, read receipts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from simulator.errors import StatusError
from simulator.pricing import Conversation, Pricing


class Behaviour(str, Enum):
    """How a contact's phone reacts to business messages.

    ``online``: sent, delivered, read. ``offline``: sent only (the rest follows when the contact
    is set back to a delivering behaviour). ``no_read_receipts``: sent, delivered.
    ``blocked`` / ``undeliverable``: failed 131026. ``marketing_limit``: marketing templates
    fail 131049, everything else as ``online``.
    """

    ONLINE = "online"
    OFFLINE = "offline"
    NO_READ_RECEIPTS = "no_read_receipts"
    BLOCKED = "blocked"
    UNDELIVERABLE = "undeliverable"
    MARKETING_LIMIT = "marketing_limit"


class MessageStatus(str, Enum):
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass
class Contact:
    """A WhatsApp user the simulator plays."""

    wa_id: str
    name: str
    behaviour: Behaviour = Behaviour.ONLINE

    def to_json(self) -> dict[str, Any]:
        return {"wa_id": self.wa_id, "name": self.name, "behaviour": self.behaviour.value}


@dataclass(frozen=True)
class StatusEvent:
    status: MessageStatus
    timestamp: int

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "timestamp": self.timestamp}


@dataclass
class SentMessage:
    """A message the business sent (accepted with a wamid) and what became of it.

    ``withheld`` lists the statuses an offline contact has not produced yet; ``emission`` is
    the task currently delivering this message's status webhooks.
    """

    wamid: str
    phone_number_id: str
    to: str
    wa_id: str
    type: str
    payload: dict[str, Any]
    accepted_at: float
    rendered_text: str | None = None
    rendered: dict[str, Any] | None = None
    template_category: str | None = None
    callback_data: str | None = None
    pricing: Pricing | None = None
    free_entry_id: str | None = None
    free_entry_until: float | None = None
    error: StatusError | None = None
    history: list[StatusEvent] = field(default_factory=list)
    withheld: list[MessageStatus] = field(default_factory=list)
    emission: asyncio.Task[None] | None = None

    @property
    def status(self) -> MessageStatus:
        return self.history[-1].status if self.history else MessageStatus.ACCEPTED

    def conversation_json(self, *, with_expiration: bool) -> dict[str, Any] | None:
        """The status webhook's ``conversation`` object: only inside a free entry point window,
        ``expiration_timestamp`` only on ``sent``."""
        if self.free_entry_id is None or self.free_entry_until is None:
            return None
        result: dict[str, Any] = {"id": self.free_entry_id}
        if with_expiration:
            result["expiration_timestamp"] = str(int(self.free_entry_until))
        result["origin"] = {"type": "referral_conversion"}
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "wamid": self.wamid,
            "phone_number_id": self.phone_number_id,
            "to": self.wa_id,
            "input": self.to,
            "type": self.type,
            "payload": self.payload,
            "rendered_text": self.rendered_text,
            "rendered": self.rendered,
            "status": self.status.value,
            "statuses": [event.to_json() for event in self.history],
            "error": self.error.to_json() if self.error else None,
            "pricing": self.pricing.to_json() if self.pricing else None,
            "accepted_at": self.accepted_at,
        }


@dataclass(frozen=True)
class InboundMessage:
    """A message the simulator delivered to the bot on a contact's behalf."""

    wamid: str
    phone_number_id: str
    wa_id: str
    timestamp: float


@dataclass(frozen=True)
class ReadReceipt:
    """A mark-as-read (with or without typing indicator) the business sent."""

    message_id: str
    phone_number_id: str
    contact: str | None
    typing: bool
    timestamp: int

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "phone_number_id": self.phone_number_id,
            "contact": self.contact,
            "typing_indicator": self.typing,
            "timestamp": self.timestamp,
        }


class SimState:
    """All mutable per-run state; :meth:`clear` empties it (``POST /_sim/reset``)."""

    def __init__(self) -> None:
        self.contacts: dict[str, Contact] = {}
        self.conversations: dict[tuple[str, str], Conversation] = {}
        self.sent: list[SentMessage] = []
        self.sent_by_id: dict[str, SentMessage] = {}
        self.inbound: dict[str, InboundMessage] = {}
        self.read_receipts: list[ReadReceipt] = []

    def contact(self, wa_id: str, name: str | None = None) -> Contact:
        """The contact with this wa_id, created on first use; a given ``name`` is remembered."""
        contact = self.contacts.get(wa_id)
        if contact is None:
            contact = Contact(wa_id, name or wa_id)
            self.contacts[wa_id] = contact
        elif name:
            contact.name = name
        return contact

    def conversation(self, phone_number_id: str, wa_id: str) -> Conversation:
        key = (phone_number_id, wa_id)
        if key not in self.conversations:
            self.conversations[key] = Conversation()
        return self.conversations[key]

    def add_sent(self, message: SentMessage) -> None:
        self.sent.append(message)
        self.sent_by_id[message.wamid] = message

    def messages(
        self, wa_id: str | None = None, phone_number_id: str | None = None
    ) -> list[SentMessage]:
        """Sent messages in send order, optionally for one contact and/or business number."""
        return [
            m
            for m in self.sent
            if (wa_id is None or m.wa_id == wa_id)
            and (phone_number_id is None or m.phone_number_id == phone_number_id)
        ]

    def clear(self) -> None:
        self.contacts.clear()
        self.conversations.clear()
        self.sent.clear()
        self.sent_by_id.clear()
        self.inbound.clear()
        self.read_receipts.clear()
