"""Where the channel's database is: one rule for ``rasa run``, the action server and the
command-line tools.

The channel's tables (inbox, outbox, statuses, menus, follow-ups, ledger, handover queue,
media) live in the database of Rasa's SQL tracker store when that is a database server
(PostgreSQL: row locks, no contention between writers). When the tracker store is a
SQLite file they live in a file of their own, ``whatsapp.db`` next to it: SQLite has one
write lock per file, and the channel's writers (the ingress process recording every
webhook, send outcome and status) would otherwise make Rasa's tracker store wait on
that lock in the middle of a bot turn, blocking Rasa's event loop (docs/benchmarks.md).
Nothing joins the channel's tables with Rasa's, so the split costs nothing.

The action server and the tools have no tracker store to look at: they read
``WHATSAPP_STORE_URL``, whose default is the file the default ``endpoints.yml``
(``db: rasa.db``) gives the channel.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import PurePath

from sqlalchemy.engine import make_url

STORE_URL_ENV = "WHATSAPP_STORE_URL"
CHANNEL_SQLITE_FILE = "whatsapp.db"
DEFAULT_STORE_URL = f"sqlite:///{CHANNEL_SQLITE_FILE}"
"""The channel's database when nothing says otherwise: ``whatsapp.db`` in the working
directory (next to the default tracker store's ``rasa.db``)."""


def channel_store_url(tracker_store_url: str | None) -> str:
    """The channel's database for Rasa's SQL tracker store at ``tracker_store_url``
    (None: the tracker store is not SQL). A SQLite file ``dir/name.db`` gives
    ``dir/whatsapp.db``; an in-memory SQLite database or None gives
    :data:`DEFAULT_STORE_URL`; any other database is used as it is."""
    if tracker_store_url is None:
        return DEFAULT_STORE_URL
    url = make_url(tracker_store_url)
    if url.get_backend_name() != "sqlite":
        return tracker_store_url
    if not url.database or url.database == ":memory:":
        return DEFAULT_STORE_URL
    sibling = PurePath(url.database).with_name(CHANNEL_SQLITE_FILE)
    return url.set(database=str(sibling)).render_as_string(hide_password=False)


def store_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``WHATSAPP_STORE_URL`` (unset or empty: :data:`DEFAULT_STORE_URL`), for the processes
    that have no tracker store to derive it from."""
    return (os.environ if environ is None else environ).get(STORE_URL_ENV) or DEFAULT_STORE_URL
