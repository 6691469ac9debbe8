"""The SQL tables of the channel, all on one ``MetaData`` (created together by the store).

They live in ``whatsapp.db`` beside Rasa's SQLite tracker store by default, and in the
tracker store's database beside Rasa's own ``events`` table when that is PostgreSQL
(scaled out); see :mod:`whatsapp_core.store_location`.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core.prepared import driver

STUCK = "stuck"
"""Status-event state of a message sent but never delivered within the configured time."""

metadata = sa.MetaData()

inbox = sa.Table(
    "whatsapp_inbox",
    metadata,
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("phone_number_id", sa.String(64)),
    sa.Column("recipient", sa.String(255), nullable=False),
    sa.Column("wa_timestamp", sa.BigInteger, nullable=False),
    sa.Column("opens_window", sa.Boolean, nullable=False, default=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(64)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_whatsapp_inbox_state_claimed", "state", "claimed_at"),
    sa.Index("ix_whatsapp_inbox_conversation", "conversation_id", "phone_number_id"),
    # a turn's start reads its conversation's unfinished rows in order: without this the
    # planner takes the state index and reads every unfinished row of every conversation
    sa.Index(
        "ix_whatsapp_inbox_conversation_state",
        "conversation_id", "state", "wa_timestamp", "received_at",
    ),
)

outbox = sa.Table(
    "whatsapp_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("phone_number_id", sa.String(64)),
    sa.Column("recipient", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload_json", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("wamid", sa.String(255), unique=True),
    sa.Column("error_code", sa.Integer),
    sa.Column("error_title", sa.Text),
    sa.Column("error_details", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("owner", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_whatsapp_outbox_conversation", "conversation_id", "id"),
    sa.Index("ix_whatsapp_outbox_state", "state", "updated_at"),
)

menus = sa.Table(
    "whatsapp_menus",
    metadata,
    sa.Column("conversation_id", sa.String(255), primary_key=True),
    sa.Column("options_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

status_events = sa.Table(
    "whatsapp_status_events",
    metadata,
    sa.Column("wamid", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(16), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("wa_timestamp", sa.BigInteger),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("error_code", sa.Integer),
    sa.Column("error_title", sa.Text),
    sa.Column("error_details", sa.Text),
    sa.Column("pricing_json", sa.Text),
    sa.Index("ix_whatsapp_status_events_conversation", "conversation_id", "received_at"),
)

template_statuses = sa.Table(
    "whatsapp_template_statuses",
    metadata,
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("language", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("updated_at", sa.Float, nullable=False),
)

followups = sa.Table(
    "whatsapp_followups",
    metadata,
    sa.Column("conversation_id", sa.String(255), primary_key=True),
    sa.Column("phone_number_id", sa.String(64)),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("fired_at", sa.Float),
    sa.Index("ix_whatsapp_followups_due", "state", "due_at"),
)

# --- media (issue #10): inbound files and the upload cache; see whatsapp_core/media_fetch.py
# and whatsapp_core/media_upload.py.
media = sa.Table(
    "whatsapp_media",
    metadata,
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column("media_id", sa.String(255), nullable=False),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("phone_number_id", sa.String(64)),
    sa.Column("media_type", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("detail", sa.Text),
    sa.Column("store_key", sa.String(255)),
    sa.Column("location", sa.Text),
    sa.Column("mime_type", sa.String(255)),
    sa.Column("size", sa.BigInteger),
    sa.Column("sha256", sa.String(64)),
    sa.Column("webhook_sha256", sa.String(128)),
    sa.Column("filename", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_whatsapp_media_state", "state", "updated_at"),
)

media_uploads = sa.Table(
    "whatsapp_media_uploads",
    metadata,
    sa.Column("phone_number_id", sa.String(64), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("media_id", sa.String(255), nullable=False),
    sa.Column("mime_type", sa.String(255), nullable=False),
    sa.Column("uploaded_at", sa.Float, nullable=False),
)


def create_schema(bind: sa.engine.Engine) -> None:
    """Create the channel's tables that do not exist yet, and the indexes that later
    versions added to tables an earlier version created (``create_all`` adds indexes only
    with their table). Safe when several processes start at once on one database."""
    metadata.create_all(bind)
    for table in metadata.sorted_tables:
        for index in table.indexes:
            try:
                index.create(bind, checkfirst=True)
            except sa.exc.DatabaseError:  # another process created it first
                indexes = sa.inspect(bind).get_indexes(table.name)
                if index.name not in {existing["name"] for existing in indexes}:
                    raise


def insert_ignoring_duplicate(connection: Connection, table: sa.Table, values: dict) -> bool:
    """Insert ``values`` unless the primary key exists; True when a row was inserted.

    One statement on SQLite and PostgreSQL (``ON CONFLICT DO NOTHING``), so the insert
    is also the duplicate check: two processes inserting the same key never both win.
    The statement is built once per table and column set, the values bound at execution
    (this is on the webhook path).
    """
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        try:
            with connection.begin_nested():
                connection.execute(table.insert(), values)
            return True
        except sa.exc.IntegrityError:
            return False
    statement = _insert_ignoring(table, tuple(values))
    if dialect == "sqlite":  # named parameters, as sqlite3 takes them: no execution context
        return driver(connection).execute(statement.text, values).rowcount == 1
    return connection.execute(statement, values).rowcount == 1


@functools.cache
def _insert_ignoring(table: sa.Table, columns: tuple[str, ...]) -> sa.TextClause:
    """``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL) as text: SQLAlchemy
    1.4 does not cache the compiled dialect ``insert().on_conflict_do_nothing()``, and
    compiling it per row cost more than the insert. ``columns`` are our own names."""
    names = ", ".join(columns)
    binds = ", ".join(f":{column}" for column in columns)
    return sa.text(f"INSERT INTO {table.name} ({names}) VALUES ({binds}) ON CONFLICT DO NOTHING")


_MULTI_ROW_CHUNK = 200
"""Rows per multi-row insert (9 columns: far under SQLite's and PostgreSQL's limits on
bound parameters)."""

_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)


def insert_many_ignoring_duplicates(
    connection: Connection, table: sa.Table, rows: Sequence[dict]
) -> set[tuple]:
    """Insert ``rows`` (dicts with the same keys, in that order) unless their primary
    key exists; return the primary keys (tuples, in the table's key order) inserted.

    Rows whose key repeats within ``rows`` count once (the first). On PostgreSQL and
    SQLite 3.35+ a multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING <key>`` per
    200 rows, sent as driver SQL (no SQLAlchemy compilation), so the insert is also the
    duplicate check, as in :func:`insert_ignoring_duplicate`; row by row elsewhere.
    """
    key = tuple(column.name for column in table.primary_key.columns)
    unique: dict[tuple, dict] = {}
    for row in rows:
        unique.setdefault(tuple(row[name] for name in key), row)
    if not unique:
        return set()
    dialect = connection.dialect.name
    if not (dialect == "postgresql" or (dialect == "sqlite" and _SQLITE_RETURNING)):
        return {k for k, row in unique.items() if insert_ignoring_duplicate(connection, table, row)}
    columns = tuple(next(iter(unique.values())))
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    group = "(" + ", ".join([placeholder] * len(columns)) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    tail = f" ON CONFLICT DO NOTHING RETURNING {', '.join(key)}"
    values = list(unique.values())
    inserted: set[tuple] = set()
    for start in range(0, len(values), _MULTI_ROW_CHUNK):
        chunk = values[start : start + _MULTI_ROW_CHUNK]
        params = tuple(row[column] for row in chunk for column in columns)
        sql = head + ", ".join([group] * len(chunk)) + tail
        cursor = (
            driver(connection).execute(sql, params)  # SQLite: no SQLAlchemy execution context
            if dialect == "sqlite"
            else connection.exec_driver_sql(sql, params)
        )
        inserted.update(tuple(r) for r in cursor)
    return inserted
