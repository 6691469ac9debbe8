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

from whatsapp_core.prepared import Prepared
from whatsapp_core.schema import followups

SCHEDULED = "scheduled"
FIRED = "fired"

# Built once: schedule and cancel run in every bot turn.
_STATE_OF = Prepared(
    sa.select(followups.c.state).where(
        followups.c.conversation_id == sa.bindparam("conversation_id")
    )
)
_INSERT = Prepared(followups.insert())
_PUSH_BACK = Prepared(
    followups.update()
    .where(followups.c.conversation_id == sa.bindparam("conversation"))
    .values(due_at=sa.bindparam("due"), state=SCHEDULED, created_at=sa.bindparam("now"))
)
_DELETE = Prepared(
    followups.delete().where(followups.c.conversation_id == sa.bindparam("conversation_id"))
)


def schedule(
    connection: Connection, conversation_id: str, phone_number_id: str | None, after_seconds: float
) -> bool:
    """Schedule (or push back) the conversation's follow-up; False when one already fired."""
    now = time.time()
    state = _STATE_OF.scalar(connection, {"conversation_id": conversation_id})
    if state == FIRED:
        return False
    if state is None:
        _INSERT.insert(
            connection,
            {
                "conversation_id": conversation_id,
                "phone_number_id": phone_number_id,
                "due_at": now + after_seconds,
                "state": SCHEDULED,
                "created_at": now,
            },
        )
    else:
        _PUSH_BACK.run(
            connection, {"conversation": conversation_id, "due": now + after_seconds, "now": now}
        )
    return True


def cancel(connection: Connection, conversation_id: str) -> None:
    """The contact wrote: forget the conversation's follow-up (scheduled or fired)."""
    _DELETE.run(connection, {"conversation_id": conversation_id})


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
    return _STATE_OF.scalar(connection, {"conversation_id": conversation_id})
