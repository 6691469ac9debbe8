"""Duplicated, reordered and batched webhooks at volume: one turn per wamid, none lost.

In-process (real HTTP on loopback, recording turn callback). The same scenarios against
a real ``rasa run`` are in bench/reliability_volume.py (results in docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict

from tests.reliability.conftest import credentials, envelope, start_server, text_message

CONTACTS = 50
PER_CONTACT = 10


def messages(prefix: str) -> list[dict]:
    base = int(time.time()) - 100
    return [
        text_message(f"wamid.{prefix}{c:03d}_{n:02d}", f"3933{c:07d}", f"msg {n}", base + n)
        for c in range(CONTACTS)
        for n in range(PER_CONTACT)
    ]


async def post_all(server, bodies: list[bytes], concurrency: int) -> Counter:
    gate = asyncio.Semaphore(concurrency)

    async def one(body: bytes) -> int:
        async with gate:
            return await server.post(body)

    return Counter(await asyncio.gather(*(one(b) for b in bodies)))


async def turn_cost(_turn) -> None:
    await asyncio.sleep(0.001)


async def test_500_messages_twice_shuffled_batched_10_give_500_turns(tmp_path):
    server = await start_server(credentials(tmp_path), turn_cost)
    try:
        items = messages("vol") * 2
        random.Random(7).shuffle(items)
        bodies = [envelope(items[i : i + 10]) for i in range(0, len(items), 10)]
        statuses = await post_all(server, bodies, concurrency=8)
        assert statuses == Counter({200: 100})
        await server.settle(CONTACTS * PER_CONTACT)
        await asyncio.sleep(0.2)  # a late duplicate turn would show up here
        per_wamid = Counter(turn.message_id for turn in server.turns)
        assert len(per_wamid) == CONTACTS * PER_CONTACT, "lost turns"
        assert max(per_wamid.values()) == 1, "duplicate turns"
        # one contact's turns never overlap
        by_contact = defaultdict(list)
        for turn in server.turns:
            by_contact[turn.conversation_id].append(turn)
        for turns in by_contact.values():
            for before, after in zip(turns, turns[1:], strict=False):
                assert after.started >= before.finished
    finally:
        await server.stop()


async def test_per_contact_order_kept_with_duplicates_and_concurrent_contacts(tmp_path):
    """Each contact's messages arrive in order (other contacts interleaved, every batch
    re-delivered a little later): turns follow WhatsApp's order per contact."""
    server = await start_server(credentials(tmp_path), turn_cost)
    try:
        items = messages("ord")
        rng = random.Random(11)
        queues = defaultdict(list)
        for item in items:
            queues[item["from"]].append(item)
        ordered = []
        while any(queues.values()):  # interleave contacts, keep each contact's order
            contact = rng.choice([c for c, q in queues.items() if q])
            ordered.append(queues[contact].pop(0))
        bodies = [envelope(ordered[i : i + 10]) for i in range(0, len(ordered), 10)]
        sent = []
        for index, body in enumerate(bodies):
            sent.append(body)
            if index >= 3:
                sent.append(bodies[index - 3])  # Meta re-delivers an earlier batch
        for body in sent:  # one at a time: acceptance order is the order above
            assert await server.post(body) == 200
        await server.settle(len(items))
        await asyncio.sleep(0.2)
        per_wamid = Counter(t.message_id for t in server.turns)
        assert len(per_wamid) == len(items) and max(per_wamid.values()) == 1
        by_contact = defaultdict(list)
        for turn in server.turns:
            by_contact[turn.conversation_id].append(turn.message_id)
        for contact, wamids in by_contact.items():
            assert wamids == sorted(wamids), contact
    finally:
        await server.stop()


async def test_backlog_longer_than_the_lease_gives_no_second_turn(tmp_path):
    """Found here: the recovery sweep re-claimed rows this instance still had queued."""
    def busy(seconds: float) -> None:  # CPU-bound, like NLU on the event loop
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    async def slow_turn(_turn) -> None:
        busy(0.01)
        await asyncio.sleep(0)

    server = await start_server(credentials(tmp_path, recovery_lease_seconds=0.3), slow_turn)
    try:
        base = int(time.time()) - 100
        items = [text_message(f"wamid.lease{n:03d}", "393300000001", f"m{n}", base + n)
                 for n in range(100)]  # one contact: about 1.2 s of backlog
        for i in range(0, len(items), 10):
            assert await server.post(envelope(items[i : i + 10])) == 200
        await server.settle(100)
        await asyncio.sleep(0.5)
        per_wamid = Counter(turn.message_id for turn in server.turns)
        assert max(per_wamid.values()) == 1, f"{sum(per_wamid.values()) - 100} extra turns"
    finally:
        await server.stop()
