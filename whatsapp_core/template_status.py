"""Template statuses learnt from Meta's webhooks while running, shared by every process.

``templates/catalogue.yml`` is the designers' file (and ``tools.sync_templates`` refreshes
it from Meta). Between syncs, Meta announces changes with
``message_template_status_update`` webhooks (APPROVED, PAUSED, DISABLED...): the Rasa
server records them here, in the channel's database, and the action server and
the agent API apply them on top of the file, so a paused template stops being chosen
everywhere at once, on every instance.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core.schema import template_statuses
from whatsapp_core.templates import TemplateCatalogue


def status_update_from_webhook(value: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """``(name, language, event, reason)`` of a ``message_template_status_update`` value."""
    name = value.get("message_template_name")
    language = value.get("message_template_language")
    event = value.get("event")
    if not (isinstance(name, str) and isinstance(language, str) and isinstance(event, str)):
        return None
    return name, language, event.upper(), str(value.get("reason") or "")


def record_status(
    connection: Connection, name: str, language: str, status: str, reason: str = ""
) -> None:
    """Remember Meta's latest status of one template translation (replaces the previous)."""
    key = (template_statuses.c.name == name) & (template_statuses.c.language == language)
    connection.execute(template_statuses.delete().where(key))
    connection.execute(
        template_statuses.insert().values(
            name=name, language=language, status=status, reason=reason, updated_at=time.time()
        )
    )


def apply_recorded_statuses(connection: Connection, catalogue: TemplateCatalogue) -> int:
    """Apply the recorded statuses to ``catalogue`` in place; return how many changed it."""
    rows = connection.execute(
        sa.select(template_statuses).order_by(template_statuses.c.updated_at)
    ).fetchall()
    return sum(catalogue.update_status(row.name, row.language, row.status) for row in rows)
