"""Follow up with contacts who went silent after the bot asked them something.

Rasa's own reminders live in process memory (lost on restart, and one reminder name
overwrites another across conversations), so follow-ups live in the tracker store's
database instead: one row per conversation.

Contract:

- :func:`schedule` after the bot asked a question: due ``after_seconds`` later. It does
  nothing while a follow-up already fired and the contact has not written since, so a
  follow-up (itself usually a question) never schedules another.
- :func:`cancel` when the contact writes: the row goes away.
- :func:`claim_due` hands each due follow-up to exactly one caller (an atomic state
  change), across restarts and instances: a follow-up never fires twice.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core.schema import followups

SCHEDULED = "scheduled"
FIRED = "fired"


def schedule(
    connection: Connection, conversation_id: str, phone_number_id: str | None, after_seconds: float
) -> bool:
    """Schedule (or push back) the conversation's follow-up; False when one already fired."""
    now = time.time()
    row = connection.execute(
        sa.select(followups.c.state).where(followups.c.conversation_id == conversation_id)
    ).first()
    if row is not None and row.state == FIRED:
        return False
    values = {"due_at": now + after_seconds, "state": SCHEDULED, "created_at": now}
    if row is None:
        connection.execute(
            followups.insert().values(
                conversation_id=conversation_id, phone_number_id=phone_number_id, **values
            )
        )
    else:
        connection.execute(
            followups.update()
            .where(followups.c.conversation_id == conversation_id)
            .values(**values)
        )
    return True


def cancel(connection: Connection, conversation_id: str) -> None:
    """The contact wrote: forget the conversation's follow-up (scheduled or fired)."""
    connection.execute(followups.delete().where(followups.c.conversation_id == conversation_id))


def claim_due(connection: Connection, now: float | None = None) -> list[tuple[str, str | None]]:
    """``(conversation_id, phone_number_id)`` of follow-ups due now, each claimed once."""
    now = time.time() if now is None else now
    rows = connection.execute(
        sa.select(followups.c.conversation_id, followups.c.phone_number_id)
        .where(followups.c.state == SCHEDULED)
        .where(followups.c.due_at <= now)
        .limit(500)
    ).fetchall()
    claimed = []
    for row in rows:
        result = connection.execute(
            followups.update()
            .where(followups.c.conversation_id == row.conversation_id)
            .where(followups.c.state == SCHEDULED)
            .values(state=FIRED, fired_at=now)
        )
        if result.rowcount == 1:
            claimed.append((row.conversation_id, row.phone_number_id))
    return claimed


def pending(connection: Connection, conversation_id: str) -> str | None:
    """The state of the conversation's follow-up, or None."""
    return connection.execute(
        sa.select(followups.c.state).where(followups.c.conversation_id == conversation_id)
    ).scalar()
