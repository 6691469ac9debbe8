"""One contact's conversation as a timeline: messages both ways, delivery states, failures.

Used by the ``tools.timeline`` command and by the agent handover, so a person sees
what the bot saw: each inbound message (with its unsupported kind and raw JSON),
each outbound message with every state Meta reported and, for a failure or a stuck
message, the plain explanation and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core.delivery import STUCK_ACTIONS, STUCK_EXPLANATION, DeliveryFailure
from whatsapp_core.schema import STUCK, inbox, media, outbox, status_events

HELD_EXPLANATIONS = {
    "window_closed": (
        "Not sent: more than 24 hours have passed since the contact's last message, and "
        "WhatsApp then allows only approved templates."
    ),
    "insufficient balance": "Not sent: the template balance does not cover its price.",
}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One message of the timeline, inbound or outbound."""

    direction: str  # "in" | "out"
    at: float
    message_id: str | None
    kind: str
    summary: str
    state: str
    states: tuple[tuple[str, float], ...] = ()
    failure: dict[str, Any] | None = None
    unsupported: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    media: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the agent API."""
        return {
            "direction": self.direction,
            "at": self.at,
            "message_id": self.message_id,
            "kind": self.kind,
            "summary": self.summary,
            "state": self.state,
            "states": [{"state": s, "at": t} for s, t in self.states],
            "failure": self.failure,
            "unsupported": self.unsupported,
            "raw": self.raw,
            "media": self.media,
        }


def outbound_summary(payload: dict[str, Any]) -> str:
    """A one-line human summary of a Cloud API message object."""
    kind = payload.get("type")
    body = payload.get(kind) if isinstance(kind, str) else None
    if kind == "text" and isinstance(body, dict):
        return str(body.get("body", ""))
    if kind == "interactive" and isinstance(body, dict):
        return str((body.get("body") or {}).get("text", "")) + f" [{body.get('type')}]"
    if kind == "template" and isinstance(body, dict):
        return f"template {body.get('name')} ({(body.get('language') or {}).get('code')})"
    if isinstance(body, dict):
        return str(body.get("caption") or body.get("link") or body.get("id") or kind)
    return str(kind or "?")


def load_timeline(connection: Connection, conversation_id: str) -> list[TimelineEntry]:
    """Every message of ``conversation_id``, oldest first (a SQL function for the store)."""
    entries: list[TimelineEntry] = []
    files = {
        row.message_id: {
            "state": row.state,
            "reason": row.reason,
            "mime_type": row.mime_type,
            "size": row.size,
            "filename": row.filename,
            "url": f"api/media/{row.message_id}" if row.state == "ready" else None,
        }
        for row in connection.execute(
            sa.select(media).where(media.c.conversation_id == conversation_id)
        ).fetchall()
    }
    for row in connection.execute(
        sa.select(inbox).where(inbox.c.conversation_id == conversation_id)
    ).fetchall():
        details = json.loads(row.metadata_json).get("whatsapp", {})
        entries.append(
            TimelineEntry(
                direction="in",
                at=float(row.wa_timestamp),
                message_id=row.message_id,
                kind=str(details.get("type", "?")),
                summary=row.text,
                state=row.state,
                unsupported=details.get("unsupported"),
                raw=details.get("raw") or {},
                media=files.get(row.message_id),
            )
        )
    events: dict[str, list[Any]] = {}
    for event in connection.execute(
        sa.select(status_events)
        .where(status_events.c.conversation_id == conversation_id)
        .order_by(status_events.c.received_at)
    ).fetchall():
        events.setdefault(event.wamid, []).append(event)
    for row in connection.execute(
        sa.select(outbox).where(outbox.c.conversation_id == conversation_id)
    ).fetchall():
        payload = json.loads(row.payload_json)
        row_events = events.get(row.wamid, []) if row.wamid else []
        failure = None
        if row.state == "failed":
            failure = DeliveryFailure.from_error(
                wamid=row.wamid,
                conversation_id=conversation_id,
                code=row.error_code,
                title=row.error_title,
                details=row.error_details,
            ).to_dict()
        elif row.state == "held":
            failure = {
                "held": True,
                "reason": row.error_title,
                "explanation": HELD_EXPLANATIONS.get(
                    row.error_title or "", row.error_details or ""
                ),
                "recommended_actions": ["send_template", "ask_contact_to_write_again"],
            }
        elif row.state == "sent" and any(e.state == STUCK for e in row_events):
            failure = {
                "stuck": True,
                "explanation": STUCK_EXPLANATION,
                "recommended_actions": [action.value for action in STUCK_ACTIONS],
            }
        entries.append(
            TimelineEntry(
                direction="out",
                at=row.created_at,
                message_id=row.wamid,
                kind=row.kind,
                summary=outbound_summary(payload),
                state=row.state,
                states=tuple((e.state, e.received_at) for e in row_events),
                failure=failure,
                raw=payload,
            )
        )
    # WhatsApp timestamps are whole seconds: within one second, the contact's message
    # came before the replies to it.
    entries.sort(key=lambda entry: (int(entry.at), entry.direction == "out", entry.at))
    return entries
