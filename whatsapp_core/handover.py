"""The handover queue: conversations the bot passed to a person, and what that person sees.

A handover is one stay of a conversation in the agents' queue::

    waiting ──take──▶ with_agent ──hand back──▶ handed_back (closed)
       └──────────────hand back────────────────────▲

A conversation has at most one open handover (``waiting`` or ``with_agent``); asking
again while one is open refreshes its summary and keeps its state and agent. The bot
mirrors the state in the slot ``whatsapp_handover`` (``"waiting"``, ``"with_agent"``,
None once handed back) and the reason in ``whatsapp_handover_reason``.

The :class:`HandoverSummary` is built once, when the bot hands over, from the Rasa
tracker's events (as the action server sees them: dicts) and the store's timeline:
who the contact is (profile name, masked number), why, the window at that moment, the
last turns, the unsupported messages with their raw JSON and the delivery failures.
The window shown later is recomputed from the store's clock (:func:`store_window`), the
same one the channel's send rules use.

The SQL lives here as functions on a SQLAlchemy ``Connection``, so the Rasa server
(through ``WhatsAppStore.run``) and the action server (with its own engine on
``WHATSAPP_STORE_URL``) share them. The table is on :data:`whatsapp_core.schema.metadata`
and is created with the store's other tables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core.masking import mask_phone
from whatsapp_core.schema import inbox, metadata, outbox
from whatsapp_core.timeline import TimelineEntry, outbound_summary
from whatsapp_core.window import (
    EXTERNAL_PREFIX,
    ConversationFacts,
    WindowKind,
    WindowPolicy,
    WindowState,
    facts_from_events,
    window_state,
)

SLOT_HANDOVER = "whatsapp_handover"
SLOT_HANDOVER_REASON = "whatsapp_handover_reason"
LAST_TURNS = 10
RECENT_UNSUPPORTED = 5
RECENT_FAILURES = 5


class HandoverState(str, Enum):
    """Where a handover is: in the queue, with an agent, or closed by a hand-back."""

    WAITING = "waiting"
    WITH_AGENT = "with_agent"
    HANDED_BACK = "handed_back"


OPEN_STATES = (HandoverState.WAITING, HandoverState.WITH_AGENT)


class HandoverReason(str, Enum):
    """Why the bot handed over.

    ``REQUESTED``: the contact asked for a person (or accepted the bot's offer of one).
    ``NOT_UNDERSTOOD``: the bot failed to understand the contact too many times.
    ``UNSUPPORTED_MESSAGES``: the contact accepted a person after messages WhatsApp
    does not deliver. ``TEMPLATE_FAILED``: a template could not be sent.
    ``OTHER``: a designer's own rule handed over (the detail names the intent).
    """

    REQUESTED = "requested"
    NOT_UNDERSTOOD = "not_understood"
    UNSUPPORTED_MESSAGES = "unsupported_messages"
    TEMPLATE_FAILED = "template_failed"
    OTHER = "other"


handovers = sa.Table(
    "whatsapp_handovers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("phone_number_id", sa.String(64)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("agent", sa.String(255)),
    sa.Column("summary_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("taken_at", sa.Float),
    sa.Column("closed_at", sa.Float),
    sa.Index("ix_whatsapp_handovers_conversation", "conversation_id", "state"),
    sa.Index("ix_whatsapp_handovers_state", "state", "created_at"),
)


# ----------------------------------------------------------------------- summary
def window_to_dict(window: WindowState) -> dict[str, Any]:
    """A JSON-ready window: ``open``, ``kind`` (``service``, ``free_entry_point``,
    ``none``), ``expires_at`` and ``free_entry_point_expires_at`` (unix seconds or None),
    ``seconds_left`` and ``entry_point``."""
    return {
        "open": window.open,
        "kind": window.kind.value,
        "expires_at": window.expires_at,
        "seconds_left": window.seconds_left,
        "free_entry_point_expires_at": window.free_entry_point_expires_at,
        "entry_point": window.entry_point,
    }


def _window_from_dict(data: Mapping[str, Any]) -> WindowState:
    return WindowState(
        open=bool(data.get("open")),
        kind=WindowKind(data.get("kind") or WindowKind.NONE.value),
        expires_at=data.get("expires_at"),
        free_entry_point_expires_at=data.get("free_entry_point_expires_at"),
        entry_point=data.get("entry_point"),
        seconds_left=int(data.get("seconds_left") or 0),
    )


@dataclass(frozen=True, slots=True)
class Turn:
    """One line of the conversation: ``speaker`` is ``contact``, ``bot`` or ``agent``;
    ``at`` is WhatsApp's time for a contact message, Rasa's for the others."""

    speaker: str
    text: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "text": self.text, "at": self.at}


@dataclass(frozen=True, slots=True)
class HandoverSummary:
    """What an agent needs to pick up the conversation (see the module docstring).

    ``unsupported``: the ``metadata.whatsapp.unsupported`` dicts of recent contact
    messages (kind, recommended action, Meta's error, ``raw`` JSON) with their
    ``message_id`` and ``at``. ``delivery_failures``: recent outbound messages that
    failed or got stuck: ``message_id``, ``at``, ``summary`` and the explained ``failure``.
    """

    conversation_id: str
    contact_name: str | None
    masked_number: str
    reason: HandoverReason
    reason_detail: str | None
    facts: ConversationFacts
    window: WindowState
    last_turns: tuple[Turn, ...]
    unsupported: tuple[Mapping[str, Any], ...]
    delivery_failures: tuple[Mapping[str, Any], ...]
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: stored in the queue, served by the agent API, posted to a desk."""
        return {
            "conversation_id": self.conversation_id,
            "contact": {"name": self.contact_name, "masked_number": self.masked_number},
            "reason": self.reason.value,
            "reason_detail": self.reason_detail,
            "created_at": self.created_at,
            "window": window_to_dict(self.window),
            "facts": self.facts.to_slots(),
            "last_turns": [turn.to_dict() for turn in self.last_turns],
            "unsupported": [dict(item) for item in self.unsupported],
            "delivery_failures": [dict(item) for item in self.delivery_failures],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandoverSummary:
        """Read back what :meth:`to_dict` wrote."""
        contact = data.get("contact") or {}
        return cls(
            conversation_id=str(data["conversation_id"]),
            contact_name=contact.get("name"),
            masked_number=str(contact.get("masked_number") or ""),
            reason=HandoverReason(data["reason"]),
            reason_detail=data.get("reason_detail"),
            facts=ConversationFacts.from_slots(data.get("facts") or {}),
            window=_window_from_dict(data.get("window") or {}),
            last_turns=tuple(
                Turn(str(t["speaker"]), str(t["text"]), float(t["at"]))
                for t in data.get("last_turns") or []
            ),
            unsupported=tuple(data.get("unsupported") or ()),
            delivery_failures=tuple(data.get("delivery_failures") or ()),
            created_at=float(data["created_at"]),
        )


def _whatsapp(event: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata_ = event.get("metadata")
    details = metadata_.get("whatsapp") if isinstance(metadata_, Mapping) else None
    return details if isinstance(details, Mapping) else {}


def _is_contact_message(event: Mapping[str, Any]) -> bool:
    return event.get("event") == "user" and not str(event.get("text") or "").startswith(
        EXTERNAL_PREFIX
    )


def _event_time(event: Mapping[str, Any]) -> float:
    at = _whatsapp(event).get("timestamp") if event.get("event") == "user" else None
    if at is None:
        at = event.get("timestamp")
    try:
        return float(at)
    except (TypeError, ValueError):
        return 0.0


def last_turns(events: Sequence[Mapping[str, Any]], limit: int = LAST_TURNS) -> list[Turn]:
    """The last ``limit`` texts of the conversation, oldest first.

    Contact messages (``user`` events, not ``EXTERNAL:`` intents) and bot messages with
    a text; a bot message whose metadata has ``agent: true`` is an agent's.
    """
    turns: list[Turn] = []
    for event in events:
        text = event.get("text")
        if not text:
            continue
        if _is_contact_message(event):
            turns.append(Turn("contact", str(text), _event_time(event)))
        elif event.get("event") == "bot":
            metadata_ = event.get("metadata")
            agent = isinstance(metadata_, Mapping) and metadata_.get("agent") is True
            turns.append(Turn("agent" if agent else "bot", str(text), _event_time(event)))
    return turns[-limit:]


def unsupported_payloads(
    events: Sequence[Mapping[str, Any]], limit: int = RECENT_UNSUPPORTED
) -> list[dict[str, Any]]:
    """``metadata.whatsapp.unsupported`` of the last ``limit`` unsupported contact
    messages, oldest first, each with the message's ``message_id`` and ``at``."""
    found = []
    for event in events:
        if not _is_contact_message(event):
            continue
        details = _whatsapp(event)
        unsupported = details.get("unsupported")
        if isinstance(unsupported, Mapping):
            found.append(
                {
                    "message_id": details.get("message_id") or event.get("message_id"),
                    "at": _event_time(event),
                    **unsupported,
                }
            )
    return found[-limit:]


def delivery_failures(
    timeline: Sequence[TimelineEntry], limit: int = RECENT_FAILURES
) -> list[dict[str, Any]]:
    """The last ``limit`` outbound messages of ``timeline`` that failed or got stuck."""
    return [
        {
            "message_id": entry.message_id,
            "at": entry.at,
            "summary": entry.summary,
            "failure": entry.failure,
        }
        for entry in timeline
        if entry.direction == "out" and entry.failure is not None
    ][-limit:]


def contact_of(
    conversation_id: str, events: Sequence[Mapping[str, Any]]
) -> tuple[str | None, str]:
    """``(profile name, masked number)`` from the newest contact message that has them;
    the number is the ``wa_id`` (else the conversation id), masked."""
    name = None
    number = None
    for event in reversed(events):
        if not _is_contact_message(event):
            continue
        details = _whatsapp(event)
        name = name or details.get("profile_name")
        number = number or details.get("wa_id")
        if name and number:
            break
    return (str(name) if name else None), mask_phone(number or conversation_id)


def build_summary(
    conversation_id: str,
    events: Sequence[Mapping[str, Any]],
    *,
    reason: HandoverReason,
    now: float,
    reason_detail: str | None = None,
    previous_facts: ConversationFacts | None = None,
    timeline: Sequence[TimelineEntry] = (),
    policy: WindowPolicy = WindowPolicy(),
) -> HandoverSummary:
    """The summary of a conversation handed over at ``now``.

    ``events``: the tracker's events as dicts, oldest first (the current session);
    ``previous_facts``: the window facts carried over from earlier sessions (the
    ``whatsapp_*`` carry-over slots); ``timeline``: the store's timeline of the
    conversation, for delivery failures. Pure.
    """
    facts = facts_from_events(events, policy, previous_facts)
    name, masked = contact_of(conversation_id, events)
    return HandoverSummary(
        conversation_id=conversation_id,
        contact_name=name,
        masked_number=masked,
        reason=reason,
        reason_detail=reason_detail,
        facts=facts,
        window=window_state(facts, now, policy),
        last_turns=tuple(last_turns(events)),
        unsupported=tuple(unsupported_payloads(events)),
        delivery_failures=tuple(delivery_failures(timeline)),
        created_at=now,
    )


def store_window(
    last_inbound_at: int | None, now: float, policy: WindowPolicy = WindowPolicy()
) -> WindowState:
    """The service window at ``now`` from the store's clock (``last_inbound_at``: the newest
    window-opening contact message), as the channel's send rules decide free-form
    replies. The free entry point is not known there: the summary's window has it."""
    return window_state(ConversationFacts(last_inbound_at=last_inbound_at), now, policy)


# ------------------------------------------------------------------------ records
@dataclass(frozen=True, slots=True)
class Handover:
    """One row of the queue (see the module docstring for the states)."""

    id: int
    conversation_id: str
    phone_number_id: str | None
    state: HandoverState
    reason: HandoverReason
    agent: str | None
    summary: HandoverSummary
    created_at: float
    updated_at: float
    taken_at: float | None
    closed_at: float | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def to_dict(self) -> dict[str, Any]:
        """The queue fields, without the summary's turns and payloads."""
        return {
            "conversation_id": self.conversation_id,
            "state": self.state.value,
            "reason": self.reason.value,
            "reason_detail": self.summary.reason_detail,
            "agent": self.agent,
            "contact_name": self.summary.contact_name,
            "masked_number": self.summary.masked_number,
            "created_at": self.created_at,
            "taken_at": self.taken_at,
            "closed_at": self.closed_at,
        }


@dataclass(frozen=True, slots=True)
class LastMessage:
    """The newest message of a conversation, either way (``direction`` ``in``/``out``)."""

    direction: str
    kind: str
    text: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "kind": self.kind, "text": self.text, "at": self.at}


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """An open handover with what the queue shows: the window clock and the last message."""

    handover: Handover
    last_inbound_at: int | None
    last_message: LastMessage | None

    def window(self, now: float, policy: WindowPolicy = WindowPolicy()) -> WindowState:
        return store_window(self.last_inbound_at, now, policy)


@dataclass(frozen=True, slots=True)
class ContactMessage:
    """The newest contact message as stored in the inbox: where replies go
    (``recipient``, ``phone_number_id``) and the channel's ``whatsapp`` metadata."""

    recipient: str
    phone_number_id: str | None
    wa_timestamp: int
    whatsapp: Mapping[str, Any]

    @property
    def profile_name(self) -> str | None:
        name = self.whatsapp.get("profile_name")
        return str(name) if name else None

    @property
    def wa_id(self) -> str:
        return str(self.whatsapp.get("wa_id") or self.recipient)


def _handover(row: Any) -> Handover:
    return Handover(
        id=row.id,
        conversation_id=row.conversation_id,
        phone_number_id=row.phone_number_id,
        state=HandoverState(row.state),
        reason=HandoverReason(row.reason),
        agent=row.agent,
        summary=HandoverSummary.from_dict(json.loads(row.summary_json)),
        created_at=row.created_at,
        updated_at=row.updated_at,
        taken_at=row.taken_at,
        closed_at=row.closed_at,
    )


# ---------------------------------------------------------------------------- SQL
def _open_row(connection: Connection, conversation_id: str) -> Any:
    return connection.execute(
        sa.select(handovers)
        .where(handovers.c.conversation_id == conversation_id)
        .where(handovers.c.state.in_([s.value for s in OPEN_STATES]))
        .order_by(handovers.c.id.desc())
        .limit(1)
    ).first()


def _row_by_id(connection: Connection, handover_id: int) -> Handover:
    return _handover(
        connection.execute(sa.select(handovers).where(handovers.c.id == handover_id)).one()
    )


def enqueue(
    connection: Connection,
    summary: HandoverSummary,
    *,
    phone_number_id: str | None,
    now: float | None = None,
) -> Handover:
    """Put the conversation in the queue (``waiting``); return its handover.

    When it already has an open handover, that one gets the new summary and reason and
    keeps its state, agent and id: a conversation is never queued twice.
    """
    now = time.time() if now is None else now
    summary_json = json.dumps(summary.to_dict(), ensure_ascii=False, default=str)
    row = _open_row(connection, summary.conversation_id)
    if row is not None:
        connection.execute(
            handovers.update()
            .where(handovers.c.id == row.id)
            .values(reason=summary.reason.value, summary_json=summary_json, updated_at=now)
        )
        return _row_by_id(connection, row.id)
    handover_id = connection.execute(
        handovers.insert().values(
            conversation_id=summary.conversation_id,
            phone_number_id=phone_number_id,
            state=HandoverState.WAITING.value,
            reason=summary.reason.value,
            summary_json=summary_json,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]
    return _row_by_id(connection, handover_id)


def take(
    connection: Connection, conversation_id: str, agent: str, now: float | None = None
) -> Handover | None:
    """The agent named ``agent`` takes the open handover (``with_agent``); another agent
    may take it over. None when the conversation has no open handover."""
    now = time.time() if now is None else now
    row = _open_row(connection, conversation_id)
    if row is None:
        return None
    connection.execute(
        handovers.update()
        .where(handovers.c.id == row.id)
        .values(state=HandoverState.WITH_AGENT.value, agent=agent, taken_at=now, updated_at=now)
    )
    return _row_by_id(connection, row.id)


def hand_back(
    connection: Connection, conversation_id: str, now: float | None = None
) -> Handover | None:
    """Close the open handover (``handed_back``); None when there is none."""
    now = time.time() if now is None else now
    row = _open_row(connection, conversation_id)
    if row is None:
        return None
    connection.execute(
        handovers.update()
        .where(handovers.c.id == row.id)
        .values(state=HandoverState.HANDED_BACK.value, closed_at=now, updated_at=now)
    )
    return _row_by_id(connection, row.id)


def latest_handover(connection: Connection, conversation_id: str) -> Handover | None:
    """The conversation's newest handover, open or closed, or None when it never had one."""
    row = connection.execute(
        sa.select(handovers)
        .where(handovers.c.conversation_id == conversation_id)
        .order_by(handovers.c.id.desc())
        .limit(1)
    ).first()
    return _handover(row) if row is not None else None


def last_inbound_at(
    connection: Connection, conversation_id: str, phone_number_id: str | None
) -> int | None:
    """Newest WhatsApp timestamp of a window-opening message from this contact (the same
    clock as ``WhatsAppStore.last_inbound_timestamp``)."""
    condition = [inbox.c.conversation_id == conversation_id, inbox.c.opens_window]
    if phone_number_id is not None:
        condition.append(inbox.c.phone_number_id == phone_number_id)
    return connection.execute(
        sa.select(sa.func.max(inbox.c.wa_timestamp)).where(*condition)
    ).scalar()


def last_contact_message(connection: Connection, conversation_id: str) -> ContactMessage | None:
    """The newest message the contact sent (any type), or None."""
    row = connection.execute(
        sa.select(inbox)
        .where(inbox.c.conversation_id == conversation_id)
        .order_by(inbox.c.wa_timestamp.desc(), inbox.c.received_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    details = json.loads(row.metadata_json).get("whatsapp")
    return ContactMessage(
        recipient=row.recipient,
        phone_number_id=row.phone_number_id,
        wa_timestamp=row.wa_timestamp,
        whatsapp=details if isinstance(details, Mapping) else {},
    )


def last_message(connection: Connection, conversation_id: str) -> LastMessage | None:
    """The newest message either way: the contact's by WhatsApp time, ours by queue time."""
    inbound = connection.execute(
        sa.select(inbox.c.text, inbox.c.wa_timestamp, inbox.c.metadata_json)
        .where(inbox.c.conversation_id == conversation_id)
        .order_by(inbox.c.wa_timestamp.desc(), inbox.c.received_at.desc())
        .limit(1)
    ).first()
    outbound = connection.execute(
        sa.select(outbox.c.kind, outbox.c.payload_json, outbox.c.created_at)
        .where(outbox.c.conversation_id == conversation_id)
        .order_by(outbox.c.id.desc())
        .limit(1)
    ).first()
    candidates = []
    if inbound is not None:
        kind = json.loads(inbound.metadata_json).get("whatsapp", {}).get("type", "?")
        candidates.append(LastMessage("in", str(kind), inbound.text, float(inbound.wa_timestamp)))
    if outbound is not None:
        summary = outbound_summary(json.loads(outbound.payload_json))
        candidates.append(LastMessage("out", outbound.kind, summary, outbound.created_at))
    return max(candidates, key=lambda message: message.at) if candidates else None


def open_queue(connection: Connection) -> list[QueueEntry]:
    """Every open handover, oldest first, with its window clock and last message."""
    rows = connection.execute(
        sa.select(handovers)
        .where(handovers.c.state.in_([s.value for s in OPEN_STATES]))
        .order_by(handovers.c.created_at, handovers.c.id)
    ).fetchall()
    return [
        QueueEntry(
            handover=_handover(row),
            last_inbound_at=last_inbound_at(connection, row.conversation_id, row.phone_number_id),
            last_message=last_message(connection, row.conversation_id),
        )
        for row in rows
    ]
