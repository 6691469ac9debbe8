"""The SQL store: inbox (dedup, durability, order), outbox, and numbered menus.

One database, reached through SQLAlchemy with the URL the Rasa tracker store uses
(SQLite file by default, PostgreSQL when scaled out), so every ``rasa run`` instance
sees the same world. Nothing that matters lives only in process memory.

All calls are ``async``; the event loop never waits for the database. They run on the
store's threads, except short write transactions on SQLite (a bot turn's start, its
replies and its end; spooled statuses), which run on the event loop as Rasa's own SQL
tracker store does on that file: they take SQLite's write lock first and, while another
connection holds it, sleep asynchronously and try again (:meth:`WhatsAppStore.run_short`).
Inbox inserts that arrive together (a burst of webhooks) are written in one transaction:
one commit for many acks.

Contracts:

- :meth:`WhatsAppStore.accept` inserts inbox rows keyed by the wamid; a wamid
  already present (a Meta re-delivery, now or days later, on any instance) is not
  inserted again and is not returned. What it returns is durably committed.
- a row stays ``accepted`` until :meth:`mark_done`; rows whose claim is older than
  the lease are handed out again by :meth:`claim_stale` (crash recovery).
- :meth:`last_inbound_timestamp` is the window's clock: the newest WhatsApp
  timestamp of a message from that contact to that business number.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import whatsapp_core.handover  # the handover queue table; the last-inbound query
from whatsapp_core import followups, ledger
from whatsapp_core.prepared import Prepared
from whatsapp_core.schema import (
    STUCK,
    create_schema,
    inbox,
    insert_ignoring_duplicate,
    insert_many_ignoring_duplicates,
    menus,
    outbox,
    status_events,
)
from whatsapp_core.timeline import TimelineEntry, load_timeline

T = TypeVar("T")

LOCK_POLL_SECONDS = 0.0005
LOCK_SPIN_SECONDS = 0.001
"""On the event loop, a transaction that finds SQLite's write lock taken first tries again
at the loop's next turn (after whatever else is ready) for this long, then every
:data:`LOCK_POLL_SECONDS`: another process's transaction holds the lock for 0.1-0.4 ms,
and a sleep on the loop lasts at least a millisecond when nothing else wakes it (epoll's
resolution), which stalled the turn that waited (measured: 0.7 ms per message)."""
LOOP_CHUNK = 100
"""Statuses per transaction on the event loop (SQLite, spooled statuses): ~2 ms."""

# Statements of the status path, built once (values bound at execution).
_OUTBOX_BY_WAMIDS = Prepared(
    sa.select(outbox.c.wamid, outbox.c.id, outbox.c.state, outbox.c.conversation_id).where(
        outbox.c.wamid.in_(sa.bindparam("wamids", expanding=True))
    )
)
_STATUS_CHUNK = 400


class InboxState(str, Enum):
    """Where an inbound message is in its life."""

    ACCEPTED = "accepted"
    DONE = "done"
    FAILED = "failed"


class OutboxState(str, Enum):
    """Where an outbound message is; delivery states follow Meta's status webhooks."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    HELD = "held"


_STATE_RANK = {
    OutboxState.HELD.value: 0,
    OutboxState.QUEUED.value: 0,
    OutboxState.SENT.value: 1,
    OutboxState.DELIVERED.value: 2,
    OutboxState.READ.value: 3,
    OutboxState.PLAYED.value: 4,
    OutboxState.FAILED.value: 5,
}
# A move never goes backwards, also when another instance moved the row since it was read
# (PostgreSQL: "delivered" and "read" of one message may reach two instances at once).
_OUTBOX_MOVE = Prepared(
    outbox.update()
    .where(outbox.c.id == sa.bindparam("outbox_id"))
    .where(sa.case(_STATE_RANK, value=outbox.c.state, else_=0) < sa.bindparam("rank")),
    keyed=True,
)


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One accepted contact message, as stored and as handed to the turn workers."""

    message_id: str
    conversation_id: str
    phone_number_id: str | None
    recipient: str
    wa_timestamp: int
    opens_window: bool
    text: str
    metadata: dict[str, Any]


class TurnDecision(str, Enum):
    """What :meth:`WhatsAppStore.start_turn` decided for a contact's turn."""

    RUN = "run"
    """The message is this instance's: run the turn now."""
    SKIP = "skip"
    """Done already, or taken over by another instance: do not run it here."""
    EARLIER_FIRST = "earlier_first"
    """Earlier messages of the conversation, now this instance's, must have their turns first."""
    WAIT = "wait"
    """An earlier message of the conversation is held by another live instance: try later."""


@dataclass(frozen=True, slots=True)
class TurnStart:
    """The decision for a turn; with RUN the numbered menu its message may answer, with
    EARLIER_FIRST the earlier messages to run first (in WhatsApp order)."""

    decision: TurnDecision
    menu: list[dict[str, Any]] | None = None
    earlier: tuple[InboxItem, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbound message waiting to be sent (or re-sent after a crash)."""

    id: int
    conversation_id: str
    phone_number_id: str | None
    recipient: str
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A delivery state Meta reported for one outbound message."""

    wamid: str
    state: OutboxState
    recipient: str | None = None
    wa_timestamp: int | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    pricing: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AppliedStatus:
    """A status seen for the first time: its conversation, and whether the message moved."""

    change: StatusChange
    conversation_id: str
    outbox_id: int | None
    moved: bool


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An outbound message with its current state, for timelines and tests."""

    id: int
    conversation_id: str
    recipient: str
    kind: str
    state: str
    wamid: str | None
    error_code: int | None
    error_title: str | None
    error_details: str | None
    attempts: int
    payload: dict[str, Any]
    created_at: float
    updated_at: float


def _sqlite_pragmas(busy_timeout_ms: int, checkpoints: bool) -> Callable[[Any, Any], None]:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not checkpoints:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return apply


def create_engine(url: str, *, busy_timeout_ms: int = 10_000, checkpoints: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets WAL, ``synchronous=NORMAL`` and a busy timeout
    (and, without ``checkpoints``, connections that never checkpoint the WAL: no fsync).

    SQLite connections are pooled: SQLAlchemy 1.4 would open and close one per
    transaction, and closing the last connection checkpoints the WAL while holding the
    GIL, which stalls the event loop (measured: 3.06 ms → 0.45 ms per status transaction).
    """
    if sa.engine.make_url(url).get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url,
            future=True,
            poolclass=sa.pool.QueuePool,
            pool_size=2,
            max_overflow=4,
            connect_args={"check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms, checkpoints))
        return engine
    return sa.create_engine(url, future=True, pool_pre_ping=True)


class _Locked:
    """What :meth:`_SqliteWriter.try_transaction` returns while another connection writes."""


_LOCKED = _Locked()
LOCK_WAIT_SECONDS = 10.0
"""How long a write transaction waits for SQLite's lock before giving up."""


class _SqliteWriter:
    """SQLite write transactions made one at a time by one thread (the event loop, or the
    ingress thread), on one connection kept open: no pool check-out and reset each time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def try_transaction(self, fn: Callable[[Connection], T]) -> T | _Locked:
        """``fn`` in one transaction that takes the write lock first (``BEGIN IMMEDIATE``,
        on the driver's connection): while another connection holds the lock,
        :data:`_LOCKED` at once, before ``fn`` did any work and without the cost of an
        error wrapped by SQLAlchemy. ``fn`` reads and writes under the lock (serialized)."""
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self._connection = self._engine.connect()
        try:
            connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            return _LOCKED
        with connection.begin():
            return fn(connection)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._engine.dispose()


def _lock_timeout() -> sa.exc.OperationalError:
    return sa.exc.OperationalError(
        "BEGIN IMMEDIATE",
        None,
        sqlite3.OperationalError(f"database is locked for over {LOCK_WAIT_SECONDS:.0f} s"),
    )


# Statements of the turn path (turn start, replies, turn end), built once: building and
# caching a statement costs several times what SQLite spends executing it.
_ACCEPTED_IN_CONVERSATION = Prepared(
    sa.select(inbox.c.message_id, inbox.c.owner, inbox.c.claimed_at, inbox.c.attempts)
    .where(inbox.c.conversation_id == sa.bindparam("conversation_id"))
    .where(inbox.c.state == InboxState.ACCEPTED.value)
    .order_by(inbox.c.wa_timestamp, inbox.c.received_at)
)
_INBOX_ROWS = (
    sa.select(inbox)
    .where(inbox.c.message_id.in_(sa.bindparam("message_ids", expanding=True)))
    .order_by(inbox.c.wa_timestamp, inbox.c.received_at)
)
_INBOX_STATE = Prepared(
    sa.select(inbox.c.state).where(inbox.c.message_id == sa.bindparam("message_id"))
)
_RENEW_TURN = Prepared(
    inbox.update()
    .where(inbox.c.message_id == sa.bindparam("wamid"))
    .where(inbox.c.owner == sa.bindparam("instance_id"))
    .where(inbox.c.state == InboxState.ACCEPTED.value)
    .values(claimed_at=sa.bindparam("now"))
)
_MARK_DONE = Prepared(
    inbox.update()
    .where(inbox.c.message_id == sa.bindparam("wamid"))
    .values(state=InboxState.DONE.value, claimed_at=sa.bindparam("now"))
)
_MENU_OF = Prepared(
    sa.select(menus.c.options_json).where(
        menus.c.conversation_id == sa.bindparam("conversation_id")
    )
)
_DELETE_MENU = Prepared(
    menus.delete().where(menus.c.conversation_id == sa.bindparam("conversation_id"))
)
_INSERT_OUTBOX = Prepared(outbox.insert())
_FINISH_OUTBOX = Prepared(
    outbox.update().where(outbox.c.id == sa.bindparam("outbox_id")), keyed=True
)
_INSERT_MENU = Prepared(menus.insert())


class WhatsAppStore:
    """Async facade over the SQL tables; calls run on one of the store's threads, except
    short transactions on SQLite (:meth:`run_short`, :meth:`apply_statuses`), which run on
    the event loop.

    Two threads: the ingress thread writes what a webhook answer waits for (inbox inserts
    and status updates, batched: one transaction for everything that arrived together),
    so an ack never queues behind other work, which runs on the other.

    ``webhooks_on_loop``: the process's event loop serves webhooks only (the ingress
    process, which runs no bot turns). On SQLite its inbox inserts then run on the loop,
    one short transaction per webhook, like :meth:`run_short`: on the ingress thread a
    group of them held the file's write lock for 2.5 ms on average (18 ms at worst,
    measured: the thread also waits for the GIL with the lock held), and the Rasa
    process's turn transactions waited for it, about four times per turn under load.
    """

    def __init__(self, url: str, *, instance_id: str, webhooks_on_loop: bool = False) -> None:
        self.url = url
        self.instance_id = instance_id
        self._engine = create_engine(url)
        # On SQLite, the ingress thread (what webhook answers wait for) does not use
        # SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25... ms while another
        # process (Rasa's tracker store) holds the write lock: it polls every 0.5 ms
        # instead. Short transactions run on the event loop itself (:meth:`_run_on_loop`).
        sqlite = self._engine.dialect.name == "sqlite"
        self._ingress_writer = (
            _SqliteWriter(create_engine(url, busy_timeout_ms=0)) if sqlite else None
        )
        self._loop_writer = (
            _SqliteWriter(create_engine(url, busy_timeout_ms=0, checkpoints=False))
            if sqlite
            else None
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whatsapp-store")
        self._ingress = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whatsapp-ingress")
        self._pending: list[tuple[Callable[[Connection], Any], asyncio.Future, Any]] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False
        self._webhooks_on_loop = webhooks_on_loop and sqlite
        create_schema(self._engine)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` in one transaction on the store's thread; return its result."""

        def work() -> T:
            with self._engine.begin() as connection:
                return fn(connection)

        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def run_short(self, fn: Callable[[Connection], T]) -> T:
        """Like :meth:`run`, for a short transaction (a bot turn's bookkeeping: well under a
        millisecond): on SQLite it runs on the event loop, as Rasa's SQL tracker store's
        own transactions on that file do (:meth:`_run_on_loop`: never waits for the lock
        with the loop blocked, never checkpoints), saving the hand-over to the store's
        thread (0.1-0.3 ms of CPU per transaction, measured). ``fn`` may be run again
        after a lock conflict rolled it back, so it must not act outside the transaction.
        Elsewhere (PostgreSQL: a network round trip) it is :meth:`run`."""
        if self._loop_writer is not None:
            return await self._run_on_loop(fn)
        return await self.run(fn)

    def close(self) -> None:
        """Stop the store's threads and close its connections."""
        self._ingress.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        for writer in (self._loop_writer, self._ingress_writer):
            if writer is not None:
                writer.close()
        self._engine.dispose()

    async def _run_on_loop(self, fn: Callable[[Connection], T]) -> T:
        """SQLite only: ``fn`` in one transaction on the calling thread (the event loop).

        Saves handing the GIL back and forth between the loop and a store thread (about
        30 us of CPU per status applied, measured) at the price of the loop running the
        transaction: keep ``fn`` to a few milliseconds. Never waits for the database lock
        with the loop blocked: while another writer holds it, lets the loop run and tries
        again (:data:`LOCK_SPIN_SECONDS`), for up to 10 s. Its connection (one, kept
        open) never checkpoints the WAL (an fsync); the store's other connections do.
        """
        writer: _SqliteWriter = self._loop_writer  # type: ignore[assignment] - SQLite only
        started = time.monotonic()
        while True:
            result = writer.try_transaction(fn)
            if not isinstance(result, _Locked):
                return result
            waited = time.monotonic() - started
            if waited > LOCK_WAIT_SECONDS:
                raise _lock_timeout()
            await asyncio.sleep(0 if waited < LOCK_SPIN_SECONDS else LOCK_POLL_SECONDS)

    async def run_batched(self, fn: Callable[[Connection], T]) -> T:
        """Like :meth:`run`, on the ingress thread, in one transaction with whatever other
        ``run_batched`` calls are waiting (group commit). If the shared transaction fails,
        each call is retried alone, so one bad call cannot fail the others."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, future, loop))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self._ingress.submit(self._flush_pending)
        return await future

    # ----------------------------------------------------------------- inbox
    async def accept(self, items: Sequence[InboxItem]) -> list[InboxItem]:
        """Durably insert ``items``; return those that were new (not duplicates)."""
        if not items:
            return []
        if self._webhooks_on_loop:
            return await self._run_on_loop(lambda connection: self._insert_new(connection, items))
        return await self.run_batched(lambda connection: self._insert_new(connection, items))

    def _flush_pending(self) -> None:
        while True:
            with self._pending_lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._flush_scheduled = False
                    return
            try:
                results = self._ingress_transaction(
                    lambda c, jobs=batch: [fn(c) for fn, _, _ in jobs]
                )
            except Exception:  # noqa: BLE001 - retried one by one below
                self._flush_one_by_one(batch)
                continue
            for (_, future, loop), result in zip(batch, results, strict=True):
                loop.call_soon_threadsafe(_set_result, future, result)

    def _flush_one_by_one(self, batch: list) -> None:
        for fn, future, loop in batch:
            try:
                result = self._ingress_transaction(fn)
            except Exception as error:  # noqa: BLE001 - handed to the waiting request
                loop.call_soon_threadsafe(_set_exception, future, error)
            else:
                loop.call_soon_threadsafe(_set_result, future, result)

    def _ingress_transaction(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in one transaction of the ingress thread; on SQLite, tried again every
        ``LOCK_POLL_SECONDS`` while another writer holds the lock (up to 10 s)."""
        if self._ingress_writer is None:
            with self._engine.begin() as connection:
                return fn(connection)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            result = self._ingress_writer.try_transaction(fn)
            if not isinstance(result, _Locked):
                return result
            if time.monotonic() > deadline:
                raise _lock_timeout()
            time.sleep(LOCK_POLL_SECONDS)

    def _insert_new(self, connection: Connection, items: Sequence[InboxItem]) -> list[InboxItem]:
        now = time.time()
        new: list[InboxItem] = []
        for item in items:
            values = {
                "message_id": item.message_id,
                "conversation_id": item.conversation_id,
                "phone_number_id": item.phone_number_id,
                "recipient": item.recipient,
                "wa_timestamp": item.wa_timestamp,
                "opens_window": item.opens_window,
                "received_at": now,
                "state": InboxState.ACCEPTED.value,
                "owner": self.instance_id,
                "claimed_at": now,
                "attempts": 0,
                "text": item.text,
                # ASCII escapes: a lone surrogate in contact data stays storable
                "metadata_json": json.dumps(item.metadata, default=str),
            }
            if insert_ignoring_duplicate(connection, inbox, values):
                new.append(item)
        return new

    async def mark_done(self, message_id: str) -> None:
        """Record that the bot turn for ``message_id`` happened."""
        await self.run_short(
            lambda c: _MARK_DONE.run(c, {"wamid": message_id, "now": time.time()})
        )

    async def claim_stale(self, lease_seconds: float, max_attempts: int = 5) -> list[InboxItem]:
        """Take over accepted rows whose claim is older than ``lease_seconds``.

        Used at start-up and periodically: rows another instance (or this one before
        a crash) accepted but never finished. Each claim bumps ``attempts``; rows
        over ``max_attempts`` are marked failed instead of being retried forever.
        Returned in WhatsApp timestamp order.
        """

        def claim(connection: Connection) -> list[InboxItem]:
            now = time.time()
            rows = connection.execute(
                sa.select(inbox)
                .where(inbox.c.state == InboxState.ACCEPTED.value)
                .where(inbox.c.claimed_at < now - lease_seconds)
                .order_by(inbox.c.wa_timestamp, inbox.c.received_at)
                .limit(1000)
            ).fetchall()
            return [
                _inbox_item(row)
                for row in rows
                if self._take_over(connection, row, now, max_attempts)
            ]

        return await self.run(claim)

    def _take_over(self, connection: Connection, row: Any, now: float, max_attempts: int) -> bool:
        """Claim an accepted row whose claim lapsed; True when it is now this instance's to
        run. Optimistic: a row another instance claimed meanwhile is left to it. A row past
        ``max_attempts`` is marked failed instead (logged by the caller's count)."""
        exhausted = row.attempts + 1 > max_attempts
        result = connection.execute(
            inbox.update()
            .where(inbox.c.message_id == row.message_id)
            .where(inbox.c.claimed_at == row.claimed_at)
            .values(
                owner=self.instance_id,
                claimed_at=now,
                attempts=row.attempts + 1,
                state=(InboxState.FAILED if exhausted else InboxState.ACCEPTED).value,
                error="too many attempts" if exhausted else None,
            )
        )
        return result.rowcount == 1 and not exhausted

    async def last_inbound_timestamp(
        self, conversation_id: str, phone_number_id: str | None
    ) -> int | None:
        """Newest WhatsApp timestamp of a window-opening message from this contact."""
        return await self.run(
            lambda c: whatsapp_core.handover.last_inbound_at(c, conversation_id, phone_number_id)
        )

    async def inbox_state(self, message_id: str) -> str | None:
        """The state of one inbound message (None when never accepted)."""
        return await self.run(
            lambda c: c.execute(
                sa.select(inbox.c.state).where(inbox.c.message_id == message_id)
            ).scalar()
        )

    async def prune(self, older_than_seconds: float) -> int:
        """Delete finished inbox rows older than the dedup retention; return how many."""

        def delete(connection: Connection) -> int:
            cutoff = time.time() - older_than_seconds
            return connection.execute(
                inbox.delete()
                .where(inbox.c.state != InboxState.ACCEPTED.value)
                .where(inbox.c.received_at < cutoff)
            ).rowcount

        return await self.run(delete)

    # ---------------------------------------------------------------- outbox
    async def enqueue_outbound(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        messages: Sequence[tuple[str, dict[str, Any]]],
    ) -> list[OutboxItem]:
        """Durably queue ``(kind, payload)`` messages for one conversation, in order."""
        return await self.run(
            lambda c: self.insert_outbound(c, conversation_id, phone_number_id, recipient, messages)
        )

    def insert_outbound(
        self,
        connection: Connection,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        messages: Sequence[tuple[str, dict[str, Any]]],
    ) -> list[OutboxItem]:
        """:meth:`enqueue_outbound` inside the caller's transaction."""
        now = time.time()
        queued = []
        for kind, payload in messages:
            row = self._outbox_row(
                conversation_id, phone_number_id, recipient, kind, payload, now,
                OutboxState.QUEUED,
            )
            row_id = _INSERT_OUTBOX.insert(connection, row)
            queued.append(
                OutboxItem(row_id, conversation_id, phone_number_id, recipient, kind, payload)
            )
        return queued

    async def record_unsent(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        messages: Sequence[tuple[str, dict[str, Any], OutboxState, str, str]],
    ) -> None:
        """Record ``(kind, payload, state, title, details)`` messages that will not be sent
        (held by a WhatsApp rule, or invalid), so they are on the timeline with the reason."""
        await self.run(
            lambda c: self.insert_unsent(c, conversation_id, phone_number_id, recipient, messages)
        )

    def insert_unsent(
        self,
        connection: Connection,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        messages: Sequence[tuple[str, dict[str, Any], OutboxState, str, str]],
    ) -> None:
        """:meth:`record_unsent` inside the caller's transaction."""
        now = time.time()
        for kind, payload, state, title, details in messages:
            row = self._outbox_row(
                conversation_id, phone_number_id, recipient, kind, payload, now, state
            )
            row.update(error_title=title, error_details=details)
            _INSERT_OUTBOX.insert(connection, row)

    def _outbox_row(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        kind: str,
        payload: dict[str, Any],
        now: float,
        state: OutboxState,
    ) -> dict[str, Any]:
        """The columns of a new outbox row, owned by this instance."""
        return {
            "conversation_id": conversation_id,
            "phone_number_id": phone_number_id,
            "recipient": recipient,
            "kind": kind,
            "payload_json": json.dumps(payload, ensure_ascii=False),
            "state": state.value,
            "attempts": 0,
            "owner": self.instance_id,
            "created_at": now,
            "updated_at": now,
        }

    async def finish_outbound(
        self,
        outbox_id: int,
        *,
        state: OutboxState,
        wamid: str | None,
        attempts: int,
        error_code: int | None = None,
        error_title: str | None = None,
        error_details: str | None = None,
    ) -> None:
        """Record the outcome of sending one outbox row."""
        outcome = {
            "outbox_id": outbox_id,
            "state": state.value,
            "wamid": wamid,
            "attempts": attempts,
            "error_code": error_code,
            "error_title": error_title,
            "error_details": error_details,
            "updated_at": time.time(),
        }
        await self.run_short(lambda c: _FINISH_OUTBOX.run(c, outcome))

    async def renew_outbound(self, outbox_ids: Sequence[int]) -> None:
        """Renew this process's claim on queued outbox rows it still holds (see
        :meth:`OutboundSender.start`), so :meth:`claim_stale_outbound` leaves them alone."""
        await self._touch_held(
            outbox.c.id,
            list(outbox_ids),
            outbox.c.updated_at,
            outbox.c.state == OutboxState.QUEUED.value,
        )

    async def claim_stale_outbound(self, lease_seconds: float) -> list[OutboxItem]:
        """Take over queued outbound rows older than ``lease_seconds`` (crash recovery)."""

        def claim(connection: Connection) -> list[OutboxItem]:
            now = time.time()
            rows = connection.execute(
                sa.select(outbox)
                .where(outbox.c.state == OutboxState.QUEUED.value)
                .where(outbox.c.updated_at < now - lease_seconds)
                .order_by(outbox.c.id)
                .limit(1000)
            ).fetchall()
            claimed = []
            for row in rows:
                result = connection.execute(
                    outbox.update()
                    .where(outbox.c.id == row.id)
                    .where(outbox.c.updated_at == row.updated_at)
                    .values(owner=self.instance_id, updated_at=now)
                )
                if result.rowcount == 1:
                    claimed.append(
                        OutboxItem(
                            row.id,
                            row.conversation_id,
                            row.phone_number_id,
                            row.recipient,
                            row.kind,
                            json.loads(row.payload_json),
                        )
                    )
            return claimed

        return await self.run(claim)

    async def apply_statuses(
        self, updates: Sequence[StatusChange], *, awaited_by_answer: bool = True
    ) -> list[AppliedStatus]:
        """Record Meta's status updates; return the ones seen for the first time.

        Each (wamid, state) is recorded once: a re-delivered status is ignored. The
        outbound message moves forward to the new state, never backwards (statuses
        arrive out of order: a ``delivered`` after ``read`` changes nothing, ``failed``
        is final). Statuses for messages this deployment did not send are recorded
        for the contact's timeline too. A template's ledger reservation is settled from
        the status's ``pricing``, or released when it failed.

        Awaited by a webhook answer (``awaited_by_answer``): one transaction on the
        ingress thread, grouped with other webhooks'. Otherwise (spooled statuses, applied
        after the answer): on SQLite, transactions of :data:`LOOP_CHUNK` statuses on the
        event loop itself (:meth:`_run_on_loop`, a couple of milliseconds each); on other
        databases one transaction on the store's other thread. Either way an answer to a
        contact's message waits for at most one such transaction, never for the rest.
        """
        now = time.time()
        if awaited_by_answer:
            return await self.run_batched(lambda c: _apply_statuses(c, updates, now))
        if self._loop_writer is None:
            return await self.run(lambda c: _apply_statuses(c, updates, now))
        applied: list[AppliedStatus] = []
        for start in range(0, len(updates), LOOP_CHUNK):
            chunk = updates[start : start + LOOP_CHUNK]
            applied += await self._run_on_loop(lambda c, part=chunk: _apply_statuses(c, part, now))
        return applied

    async def status_events_for(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every recorded status event of a conversation, in arrival order."""

        def query(connection: Connection) -> list[dict[str, Any]]:
            rows = connection.execute(
                sa.select(status_events)
                .where(status_events.c.conversation_id == conversation_id)
                .order_by(status_events.c.received_at)
            ).fetchall()
            return [dict(row._mapping) for row in rows]

        return await self.run(query)

    async def flag_stuck(self, older_than_seconds: float) -> list[OutboxRecord]:
        """Flag messages Meta accepted (``sent``) but never delivered within the time.

        Each is flagged once, as a ``stuck`` event on the contact's timeline; the
        message keeps its state (a late ``delivered`` still moves it on). Returns the
        messages flagged by this call.
        """

        def flag(connection: Connection) -> list[OutboxRecord]:
            now = time.time()
            rows = connection.execute(
                sa.select(outbox)
                .where(outbox.c.state == OutboxState.SENT.value)
                .where(outbox.c.updated_at < now - older_than_seconds)
                .order_by(outbox.c.id)
                .limit(1000)
            ).fetchall()
            event = {"state": STUCK, "received_at": now}
            return [
                _outbox_record(row)
                for row in rows
                if insert_ignoring_duplicate(
                    connection,
                    status_events,
                    {**event, "wamid": row.wamid, "conversation_id": row.conversation_id},
                )
            ]

        return await self.run(flag)

    async def outbound_for(self, conversation_id: str) -> list[OutboxRecord]:
        """Every outbound message of a conversation, oldest first."""

        def query(connection: Connection) -> list[OutboxRecord]:
            rows = connection.execute(
                sa.select(outbox)
                .where(outbox.c.conversation_id == conversation_id)
                .order_by(outbox.c.id)
            ).fetchall()
            return [_outbox_record(row) for row in rows]

        return await self.run(query)

    async def timeline(self, conversation_id: str) -> list[TimelineEntry]:
        """The conversation's messages both ways with their states (see ``timeline.py``)."""
        return await self.run(lambda c: load_timeline(c, conversation_id))

    # ----------------------------------------------------------------- menus
    async def save_menu(self, conversation_id: str, options: list[dict[str, Any]]) -> None:
        """Remember the numbered menu last sent to a conversation (replaces the previous)."""
        await self.run(lambda c: replace_menu(c, conversation_id, options))

    async def start_turn(
        self,
        conversation_id: str,
        message_ids: Sequence[str],
        *,
        take_menu: bool,
        lease_seconds: float,
        max_attempts: int = 5,
    ) -> TurnStart:
        """One transaction before a contact's turn; keeps the conversation's order across
        instances sharing the database.

        The conversation's unfinished (``accepted``) rows are read in WhatsApp order. When
        ``message_ids`` are not among them, or not owned by this instance, the turn is
        SKIPped (done, or taken over). Rows before them come first: one held by another
        instance whose claim is fresh means WAIT (that instance runs it); rows this
        instance owns, or whose claim lapsed (taken over here, as the recovery sweep
        would), are returned as EARLIER_FIRST. Otherwise the rows' claim is renewed, the
        conversation's follow-up cancelled (the contact wrote) and, with ``take_menu``, the
        pending numbered menu taken (it answers only the next message): RUN.
        """
        mine = set(message_ids)

        def start(connection: Connection) -> TurnStart:
            now = time.time()
            rows = _ACCEPTED_IN_CONVERSATION.rows(connection, {"conversation_id": conversation_id})
            position = next((i for i, row in enumerate(rows) if row.message_id in mine), None)
            if position is None or rows[position].owner != self.instance_id:
                return TurnStart(TurnDecision.SKIP)
            earlier: list[str] = []
            for row in rows[:position]:
                if row.owner == self.instance_id:
                    earlier.append(row.message_id)
                elif row.claimed_at >= now - lease_seconds:
                    return TurnStart(TurnDecision.WAIT)
                elif self._take_over(connection, row, now, max_attempts):
                    earlier.append(row.message_id)
                elif (
                    _INBOX_STATE.scalar(connection, {"message_id": row.message_id})
                    == InboxState.ACCEPTED.value
                ):
                    return TurnStart(TurnDecision.WAIT)  # another instance took it over first
            if earlier:
                full = connection.execute(_INBOX_ROWS, {"message_ids": earlier})
                return TurnStart(
                    TurnDecision.EARLIER_FIRST, earlier=tuple(_inbox_item(row) for row in full)
                )
            for message_id in message_ids:
                _RENEW_TURN.run(
                    connection, {"wamid": message_id, "instance_id": self.instance_id, "now": now}
                )
            followups.cancel(connection, conversation_id)
            if not take_menu:
                return TurnStart(TurnDecision.RUN)
            key = {"conversation_id": conversation_id}
            raw = _MENU_OF.scalar(connection, key)
            if raw is not None:
                _DELETE_MENU.run(connection, key)
            return TurnStart(TurnDecision.RUN, json.loads(raw) if raw else None)

        return await self.run_short(start)

    async def renew(self, message_ids: Iterable[str]) -> None:
        """Renew this instance's claim on inbox rows it holds (queued or in a turn), so
        the recovery sweep of any instance leaves them alone however long the backlog."""
        await self._touch_held(
            inbox.c.message_id,
            list(message_ids),
            inbox.c.claimed_at,
            inbox.c.owner == self.instance_id,
            inbox.c.state == InboxState.ACCEPTED.value,
        )

    async def _touch_held(
        self, key: sa.Column, ids: list, claimed: sa.Column, *conditions: Any
    ) -> None:
        """Set ``claimed`` to now on the rows whose ``key`` is in ``ids`` and that still
        meet ``conditions`` (500 keys per statement)."""

        def touch(connection: Connection) -> None:
            now = time.time()
            for start in range(0, len(ids), 500):
                connection.execute(
                    key.table.update()
                    .where(key.in_(ids[start : start + 500]), *conditions)
                    .values({claimed: now})
                )

        if ids:
            await self.run(touch)

    async def pending_menu(self, conversation_id: str) -> list[dict[str, Any]] | None:
        """The options of the last numbered menu sent to a conversation, if any."""
        raw = await self.run(
            lambda c: c.execute(
                sa.select(menus.c.options_json).where(menus.c.conversation_id == conversation_id)
            ).scalar()
        )
        return json.loads(raw) if raw else None


def replace_menu(
    connection: Connection, conversation_id: str, options: list[dict[str, Any]]
) -> None:
    """:meth:`WhatsAppStore.save_menu` inside the caller's transaction."""
    _DELETE_MENU.run(connection, {"conversation_id": conversation_id})
    _INSERT_MENU.insert(
        connection,
        {
            "conversation_id": conversation_id,
            "options_json": json.dumps(options, ensure_ascii=False),
            "created_at": time.time(),
        },
    )


def _apply_statuses(
    connection: Connection, updates: Sequence[StatusChange], now: float
) -> list[AppliedStatus]:
    """:meth:`WhatsAppStore.apply_statuses` in ``connection``'s transaction, per chunk of
    400: one query for the outbox rows, one multi-row insert that keeps the statuses
    seen for the first time, one query for the ledger reservations still held, then the
    moves (one ``executemany``). Same result as applying them one by one, in order."""
    applied: list[AppliedStatus] = []
    for start in range(0, len(updates), _STATUS_CHUNK):
        chunk = updates[start : start + _STATUS_CHUNK]
        wamids = list({change.wamid for change in chunk})
        rows = {
            row.wamid: row
            for row in _OUTBOX_BY_WAMIDS.rows(connection, {"wamids": wamids})
        }
        conversation_of = {
            change.wamid: rows[change.wamid].conversation_id
            if change.wamid in rows
            else change.recipient or "?"
            for change in chunk
        }
        new = insert_many_ignoring_duplicates(
            connection,
            status_events,
            [
                {
                    "wamid": change.wamid,
                    "state": change.state.value,
                    "conversation_id": conversation_of[change.wamid],
                    "wa_timestamp": change.wa_timestamp,
                    "received_at": now,
                    "error_code": change.error_code,
                    "error_title": change.error_title,
                    "error_details": change.error_details,
                    "pricing_json": json.dumps(change.pricing) if change.pricing else None,
                }
                for change in chunk
            ],
        )
        held = (
            ledger.reserved_wamids(connection, wamids)
            if any(change.pricing for change in chunk)
            else set()
        )
        state_of = {wamid: row.state for wamid, row in rows.items()}
        moves: dict[int, dict[str, Any]] = {}
        for change in chunk:
            key = (change.wamid, change.state.value)
            if key not in new:
                continue
            new.discard(key)  # a repeat later in the chunk is a duplicate
            row = rows.get(change.wamid)
            if change.pricing:
                if change.wamid in held:
                    ledger.settle_from_pricing(connection, change.wamid, change.pricing)
            elif change.state is OutboxState.FAILED and row is not None:
                ledger.release(connection, str(row.id), f"failed {change.error_code}")
            moved = row is not None and (
                _STATE_RANK.get(state_of[change.wamid], 0) < _STATE_RANK[change.state.value]
            )
            if moved:
                state_of[change.wamid] = change.state.value
                move = moves.setdefault(row.id, {"outbox_id": row.id, "updated_at": now})
                move["state"] = change.state.value
                move["rank"] = _STATE_RANK[change.state.value]
                if change.state is OutboxState.FAILED:
                    move |= {
                        "error_code": change.error_code,
                        "error_title": change.error_title,
                        "error_details": change.error_details,
                    }
            applied.append(
                AppliedStatus(change, conversation_of[change.wamid], row.id if row else None, moved)
            )
        for same_columns in _grouped_by_keys(moves.values()):
            _OUTBOX_MOVE.run_many(connection, same_columns)
    return applied


def _grouped_by_keys(values: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``values`` grouped by their key sets (an ``executemany`` binds the same columns)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for value in values:
        groups.setdefault(tuple(sorted(value)), []).append(value)
    return list(groups.values())


def _outbox_record(row: Any) -> OutboxRecord:
    return OutboxRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        recipient=row.recipient,
        kind=row.kind,
        state=row.state,
        wamid=row.wamid,
        error_code=row.error_code,
        error_title=row.error_title,
        error_details=row.error_details,
        attempts=row.attempts,
        payload=json.loads(row.payload_json),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _inbox_item(row: Any) -> InboxItem:
    return InboxItem(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        phone_number_id=row.phone_number_id,
        recipient=row.recipient,
        wa_timestamp=row.wa_timestamp,
        opens_window=bool(row.opens_window),
        text=row.text,
        metadata=json.loads(row.metadata_json),
    )


def _set_result(future: asyncio.Future, result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
