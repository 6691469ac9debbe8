"""The store on PostgreSQL (what a scaled-out deployment uses): the SQL that differs
from SQLite (multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` through the
driver, expanding ``IN``, statuses applied off the event loop) gives the same results.

A throw-away PostgreSQL 15 cluster on a free loopback port (``bench/scaleout.py``;
``bin/setup-postgres`` installs Debian's server when it is absent), one database per test.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg2
import pytest

from bench.scaleout import Postgres
from tests.unit.test_store import check_insert_many_returns_only_the_new_keys
from whatsapp_core import ledger
from whatsapp_core.store import InboxItem, OutboxState, StatusChange, WhatsAppStore


@pytest.fixture(scope="module")
def postgres():
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture
def store(postgres):
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres.url("postgres"))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    created = WhatsAppStore(postgres.url(name), instance_id="pg-test")
    yield created
    created.close()
    admin.cursor().execute(f"DROP DATABASE {name}")
    admin.close()


async def sent(store: WhatsAppStore, *wamids: str) -> None:
    rows = await store.enqueue_outbound("111", "pn", "111", [("text", {})] * len(wamids))
    for row, wamid in zip(rows, wamids, strict=True):
        await store.finish_outbound(row.id, state=OutboxState.SENT, wamid=wamid, attempts=1)


@pytest.mark.parametrize("awaited_by_answer", [True, False])
async def test_statuses_move_messages_in_order_and_count_once(store, awaited_by_answer):
    await sent(store, "wamid.b0", "wamid.b1")
    batch = [
        StatusChange("wamid.b0", OutboxState.DELIVERED),
        StatusChange("wamid.b0", OutboxState.READ),
        StatusChange("wamid.b0", OutboxState.DELIVERED),
        StatusChange("wamid.b1", OutboxState.READ),
        StatusChange("wamid.b1", OutboxState.DELIVERED),
        StatusChange("wamid.other", OutboxState.DELIVERED, recipient="222"),
    ]
    applied = await store.apply_statuses(batch * 300, awaited_by_answer=awaited_by_answer)
    assert [(a.change.wamid, a.moved, a.conversation_id) for a in applied] == [
        ("wamid.b0", True, "111"), ("wamid.b0", True, "111"), ("wamid.b1", True, "111"),
        ("wamid.b1", False, "111"), ("wamid.other", False, "222"),
    ]
    assert [r.state for r in await store.outbound_for("111")] == ["read", "read"]
    again = await store.apply_statuses(batch, awaited_by_answer=awaited_by_answer)
    assert again == []


async def test_a_failed_status_is_final_and_keeps_metas_error(store):
    await sent(store, "wamid.f")
    failed = StatusChange(
        "wamid.f", OutboxState.FAILED, error_code=131047, error_title="Re-engagement message"
    )
    late = StatusChange("wamid.f", OutboxState.READ)
    assert [a.moved for a in await store.apply_statuses([failed, late])] == [True, False]
    (record,) = await store.outbound_for("111")
    assert (record.state, record.error_code) == ("failed", 131047)


async def test_a_priced_status_settles_the_templates_hold_once(store):
    def hold(connection):
        ledger.top_up(connection, ledger.MICRO)
        ledger.reserve(
            connection, key="1", conversation_id="111", template="t", category="utility",
            country="IT", price=7_000,
        )
        ledger.attach_wamid(connection, "1", "wamid.t")

    await store.run(hold)
    priced = StatusChange(
        "wamid.t", OutboxState.SENT,
        pricing={"billable": True, "type": "regular", "category": "utility"},
    )
    await store.apply_statuses([priced, priced], awaited_by_answer=False)
    balance = await store.run(ledger.balance)
    assert (balance.available, balance.reserved) == (ledger.MICRO - 7_000, 0)


async def test_multi_row_insert_returns_only_the_new_keys(store):
    await check_insert_many_returns_only_the_new_keys(store)


async def test_concurrent_accepts_never_accept_a_wamid_twice(store):
    def item(message_id: str) -> InboxItem:
        return InboxItem(message_id, "111", "pn", "111", 100, True, "hi", {})

    results = await asyncio.gather(
        *(store.accept([item("same"), item(f"u{n}")]) for n in range(30))
    )
    accepted = [i.message_id for batch in results for i in batch]
    assert accepted.count("same") == 1
    assert len(accepted) == 31
