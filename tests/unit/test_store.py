import asyncio
import functools
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from whatsapp_core.schema import metadata
from whatsapp_core.store import (
    InboxItem,
    OutboxState,
    StatusChange,
    TurnDecision,
    WhatsAppStore,
)


@pytest.fixture
def store(tmp_path):
    created = WhatsAppStore(f"sqlite:///{tmp_path / 'store.db'}", instance_id="test-1")
    yield created
    created.close()


def item(message_id: str, conversation: str = "111", ts: int = 100, opens_window=True) -> InboxItem:
    return InboxItem(message_id, conversation, "pn", conversation, ts, opens_window, "hi", {"k": 1})


async def test_accept_returns_only_new_messages(store):
    assert [i.message_id for i in await store.accept([item("a"), item("b")])] == ["a", "b"]
    assert [i.message_id for i in await store.accept([item("b"), item("c")])] == ["c"]


async def test_concurrent_accepts_never_accept_a_wamid_twice(store):
    results = await asyncio.gather(*(store.accept([item("same"), item(f"u{n}")]) for n in range(50)))
    accepted = [i.message_id for batch in results for i in batch]
    assert accepted.count("same") == 1
    assert len(accepted) == 51


async def test_dedup_survives_a_new_store_on_the_same_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = WhatsAppStore(url, instance_id="one")
    second = WhatsAppStore(url, instance_id="two")
    try:
        assert await first.accept([item("x")])
        assert await second.accept([item("x")]) == []
    finally:
        first.close()
        second.close()


async def test_claim_stale_hands_out_unfinished_rows_after_the_lease(store):
    await store.accept([item("late", ts=2), item("early", ts=1), item("finished", ts=3)])
    await store.mark_done("finished")
    assert await store.claim_stale(lease_seconds=60) == []
    claimed = await store.claim_stale(lease_seconds=-1)
    assert [i.message_id for i in claimed] == ["early", "late"]
    assert claimed[0].metadata == {"k": 1}


async def test_claim_gives_up_after_max_attempts(store):
    await store.accept([item("poison")])
    for _ in range(2):
        assert await store.claim_stale(lease_seconds=-1, max_attempts=2)
    assert await store.claim_stale(lease_seconds=-1, max_attempts=2) == []
    assert await store.inbox_state("poison") == "failed"


async def test_last_inbound_timestamp_ignores_system_messages(store):
    await store.accept([item("a", ts=100), item("b", ts=300, opens_window=False), item("c", ts=200)])
    assert await store.last_inbound_timestamp("111", "pn") == 200
    assert await store.last_inbound_timestamp("111", "other-number") is None
    assert await store.last_inbound_timestamp("999", "pn") is None


async def test_prune_keeps_unfinished_and_recent_rows(store):
    await store.accept([item("old-done"), item("old-open")])
    await store.mark_done("old-done")
    assert await store.prune(older_than_seconds=3600) == 0
    assert await store.prune(older_than_seconds=-1) == 1
    assert await store.inbox_state("old-open") == "accepted"


async def test_outbox_states_move_forward_only(store):
    (row,) = await store.enqueue_outbound("111", "pn", "111", [("text", {"type": "text"})])
    await store.finish_outbound(row.id, state=OutboxState.SENT, wamid="wamid.out", attempts=1)
    changes = [
        StatusChange("wamid.out", OutboxState.READ),
        StatusChange("wamid.out", OutboxState.DELIVERED),
        StatusChange("wamid.unknown", OutboxState.DELIVERED),
    ]
    applied = await store.apply_statuses(changes)
    assert [(a.change.state.value, a.moved, a.conversation_id) for a in applied] == [
        ("read", True, "111"),
        ("delivered", False, "111"),
        ("delivered", False, "?"),
    ]
    (record,) = await store.outbound_for("111")
    assert record.state == "read"
    failed = StatusChange(
        "wamid.out", OutboxState.FAILED, error_code=131047, error_title="Re-engagement"
    )
    assert [a.moved for a in await store.apply_statuses([failed])] == [True]
    (record,) = await store.outbound_for("111")
    assert (record.state, record.error_code) == ("failed", 131047)


# Statuses a webhook answer waits for (ingress thread) and spooled ones (applied later;
# on SQLite in transactions on the event loop): the same results.
BOTH_PATHS = pytest.mark.parametrize("awaited_by_answer", [True, False])


@BOTH_PATHS
async def test_duplicated_statuses_are_recorded_once(store, awaited_by_answer):
    (row,) = await store.enqueue_outbound("111", "pn", "111", [("text", {"type": "text"})])
    await store.finish_outbound(row.id, state=OutboxState.SENT, wamid="wamid.d", attempts=1)
    delivered = StatusChange("wamid.d", OutboxState.DELIVERED, pricing={"billable": False})
    apply = functools.partial(store.apply_statuses, awaited_by_answer=awaited_by_answer)
    assert len(await apply([delivered, delivered])) == 1
    assert await apply([delivered]) == []
    events = await store.status_events_for("111")
    assert [e["state"] for e in events] == ["delivered"]


@BOTH_PATHS
async def test_one_batch_moves_a_message_through_its_states_in_order(store, awaited_by_answer):
    rows = await store.enqueue_outbound("111", "pn", "111", [("text", {}), ("text", {})])
    for n, row in enumerate(rows):
        await store.finish_outbound(row.id, state=OutboxState.SENT, wamid=f"wamid.b{n}", attempts=1)
    batch = [
        StatusChange("wamid.b0", OutboxState.DELIVERED),
        StatusChange("wamid.b0", OutboxState.READ),
        StatusChange("wamid.b0", OutboxState.DELIVERED),  # the same status twice
        StatusChange("wamid.b1", OutboxState.READ),
        StatusChange("wamid.b1", OutboxState.DELIVERED),  # late: recorded, moves nothing
        StatusChange("wamid.other", OutboxState.DELIVERED),  # not ours: recorded only
    ]
    # over one multi-row insert and one event-loop transaction too
    applied = await store.apply_statuses(batch * 600, awaited_by_answer=awaited_by_answer)
    assert [(a.change.wamid, a.moved) for a in applied] == [
        ("wamid.b0", True), ("wamid.b0", True), ("wamid.b1", True), ("wamid.b1", False),
        ("wamid.other", False),
    ]
    assert [r.state for r in await store.outbound_for("111")] == ["read", "read"]


async def waits_for_the_lock_with_the_loop_running(db_path, operation):
    """Run ``operation()`` while another connection (Rasa's tracker store) holds SQLite's
    write lock: it must wait, the event loop keep running, and it must finish once the
    lock is released. Returns what it returned."""
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    running = asyncio.create_task(operation())
    try:
        await asyncio.sleep(0.3)
        assert not running.done()
        assert ticks >= 15  # the loop kept running while the operation waited for the lock
        other.execute("COMMIT")
        return await asyncio.wait_for(running, 5)
    finally:
        ticking.cancel()
        other.close()


async def test_spooled_statuses_wait_for_another_writer_without_blocking_the_loop(
    store, tmp_path
):
    (row,) = await store.enqueue_outbound("111", "pn", "111", [("text", {})])
    await store.finish_outbound(row.id, state=OutboxState.SENT, wamid="wamid.l", attempts=1)
    applied = await waits_for_the_lock_with_the_loop_running(
        tmp_path / "store.db",
        lambda: store.apply_statuses(
            [StatusChange("wamid.l", OutboxState.DELIVERED)], awaited_by_answer=False
        ),
    )
    assert [a.moved for a in applied] == [True]


async def test_turn_bookkeeping_waits_for_another_writer_without_blocking_the_loop(
    store, tmp_path
):
    """On SQLite a turn's start and end run on the event loop (``run_short``)."""
    await store.accept([item("wamid.t")])
    start = await waits_for_the_lock_with_the_loop_running(
        tmp_path / "store.db",
        lambda: store.start_turn("111", ["wamid.t"], take_menu=True, lease_seconds=60),
    )
    assert start.decision is TurnDecision.RUN
    await waits_for_the_lock_with_the_loop_running(
        tmp_path / "store.db", lambda: store.mark_done("wamid.t")
    )
    assert await store.inbox_state("wamid.t") == "done"


async def test_sent_but_never_delivered_is_flagged_stuck_once(store):
    (row,) = await store.enqueue_outbound("111", "pn", "111", [("text", {"type": "text"})])
    await store.finish_outbound(row.id, state=OutboxState.SENT, wamid="wamid.s", attempts=1)
    assert await store.flag_stuck(older_than_seconds=3600) == []
    assert [r.wamid for r in await store.flag_stuck(older_than_seconds=-1)] == ["wamid.s"]
    assert await store.flag_stuck(older_than_seconds=-1) == []
    await store.apply_statuses([StatusChange("wamid.s", OutboxState.DELIVERED)])
    (record,) = await store.outbound_for("111")
    assert record.state == "delivered"


async def test_queued_outbound_is_recovered_after_the_lease(store):
    await store.enqueue_outbound("111", "pn", "111", [("text", {"n": 1}), ("text", {"n": 2})])
    assert await store.claim_stale_outbound(lease_seconds=60) == []
    recovered = await store.claim_stale_outbound(lease_seconds=-1)
    assert [r.payload["n"] for r in recovered] == [1, 2]


async def test_menu_is_replaced_and_cleared(store):
    await store.save_menu("111", [{"number": 1, "title": "A", "payload": "/a"}])
    await store.save_menu("111", [{"number": 1, "title": "B", "payload": "/b"}])
    assert (await store.pending_menu("111"))[0]["payload"] == "/b"
    await store.save_menu("111", [])
    assert not await store.pending_menu("111")


async def test_accept_of_a_burst_is_fast_group_commit(store):
    start = time.perf_counter()
    await asyncio.gather(*(store.accept([item(f"burst{n}")]) for n in range(200)))
    assert time.perf_counter() - start < 5


async def test_accept_waits_for_another_processs_write_lock(tmp_path):
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    store = WhatsAppStore(url, instance_id="a")
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process (Rasa's tracker store) is writing
    released = asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
    try:
        assert await store.accept([item("wamid.locked")]) == [item("wamid.locked")]
    finally:
        released.cancel()
        other.close()
        store.close()


async def test_a_status_move_never_goes_back_even_from_a_stale_read(store):
    """Another instance may move the row between this one's read and its update."""
    from whatsapp_core.store import _OUTBOX_MOVE

    (row,) = await store.enqueue_outbound("111", "pn", "111", [("text", {})])
    await store.finish_outbound(row.id, state=OutboxState.READ, wamid="wamid.r", attempts=1)
    stale_move = {"outbox_id": row.id, "state": "delivered", "rank": 2, "updated_at": 1.0}
    await store.run(lambda c: _OUTBOX_MOVE.run_many(c, [stale_move]))
    assert [r.state for r in await store.outbound_for("111")] == ["read"]
    await store.run(lambda c: _OUTBOX_MOVE.run_many(c, [stale_move | {"state": "failed", "rank": 5}]))
    assert [r.state for r in await store.outbound_for("111")] == ["failed"]


async def check_insert_many_returns_only_the_new_keys(store) -> None:
    """Shared with the PostgreSQL tests."""
    from whatsapp_core import schema

    def event(wamid: str, state: str) -> dict:
        return {"wamid": wamid, "state": state, "conversation_id": "1", "received_at": 0.0}

    def insert(rows):
        return store.run(
            lambda c: schema.insert_many_ignoring_duplicates(c, schema.status_events, rows)
        )

    first = [event(f"w{n}", "sent") for n in range(450)] + [event("w0", "sent")]
    assert len(await insert(first)) == 450
    second = [event("w1", "sent"), event("w1", "read"), event("w999", "sent")]
    assert await insert(second) == {("w1", "read"), ("w999", "sent")}
    assert await insert([]) == set()


@pytest.mark.parametrize("multi_row", [True, False])
async def test_insert_many_returns_only_the_new_keys(store, monkeypatch, multi_row):
    """One multi-row statement (SQLite 3.35+, PostgreSQL) or row by row (other databases)."""
    from whatsapp_core import schema

    monkeypatch.setattr(schema, "_SQLITE_RETURNING", multi_row)
    await check_insert_many_returns_only_the_new_keys(store)


async def test_a_turn_after_unfinished_earlier_messages_gets_them_whole_and_in_order(store):
    await store.accept([item("wamid.3", ts=3), item("wamid.1", ts=1), item("wamid.2", ts=2)])
    start = await store.start_turn("111", ["wamid.3"], take_menu=False, lease_seconds=60)
    assert start.decision is TurnDecision.EARLIER_FIRST
    assert start.earlier == (item("wamid.1", ts=1), item("wamid.2", ts=2))
    await store.mark_done("wamid.1")
    await store.mark_done("wamid.2")
    start = await store.start_turn("111", ["wamid.3"], take_menu=False, lease_seconds=60)
    assert start.decision is TurnDecision.RUN


def test_indexes_added_by_later_versions_are_created_on_existing_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as connection:  # a database from before the index existed
        connection.exec_driver_sql("DROP INDEX ix_whatsapp_inbox_conversation_state")
    for instance in ("a", "b"):  # the second start has nothing to add
        WhatsAppStore(url, instance_id=instance).close()
    names = {index["name"] for index in sa.inspect(engine).get_indexes("whatsapp_inbox")}
    assert "ix_whatsapp_inbox_conversation_state" in names
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT message_id FROM whatsapp_inbox WHERE conversation_id = ? "
            "AND state = 'accepted' ORDER BY wa_timestamp, received_at", ("c",)
        ).fetchall()
    assert "ix_whatsapp_inbox_conversation_state" in str(plan)
    assert "TEMP B-TREE" not in str(plan)


async def test_an_ingress_process_records_webhooks_on_its_loop_without_blocking_it(tmp_path):
    """``webhooks_on_loop``: inbox inserts run on the event loop's thread (no GIL hand-over
    with the lock held), wait for another writer asynchronously, and still dedupe."""
    store = WhatsAppStore(
        f"sqlite:///{tmp_path / 'store.db'}", instance_id="ingress", webhooks_on_loop=True
    )
    threads = []
    insert_new = store._insert_new

    def recording(connection, items):
        threads.append(threading.current_thread())
        return insert_new(connection, items)

    store._insert_new = recording
    try:
        new = await waits_for_the_lock_with_the_loop_running(
            tmp_path / "store.db", lambda: store.accept([item("wamid.i1"), item("wamid.i2")])
        )
        assert [i.message_id for i in new] == ["wamid.i1", "wamid.i2"]
        assert await store.accept([item("wamid.i2"), item("wamid.i3")]) == [item("wamid.i3")]
        assert set(threads) == {threading.main_thread()}
    finally:
        store.close()
