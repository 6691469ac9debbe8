"""CPU of a bot turn's store bookkeeping in the Rasa process (diagnostics only).

    .venv/bin/python -m bench.turn_costs            # SQLite, short transactions on the loop
    .venv/bin/python -m bench.turn_costs thread     # the same on the store's thread

Accepts 300 text messages for 30 contacts (10 each, all queued as under load), then runs
each contact's turns in order, as the receiver does: ``start_turn``, one reply through
``OutboundSender.send`` (window check, outbox insert, follow-up scheduled: the reply ends
with a question) and ``mark_done``. Prints the process CPU per call of each. No Graph
API calls: the sender's hand-over is replaced by a no-op.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.payloads import whatsapp_like_metadata
from whatsapp_core.outbound import build_messages
from whatsapp_core.reopening import TemplateResources
from whatsapp_core.send_rules import SendRules
from whatsapp_core.sender import OutboundSender
from whatsapp_core.store import InboxItem, WhatsAppStore

CONTACTS = 30
PER_CONTACT = 10


async def measure(variant: str) -> dict[str, float]:
    """CPU milliseconds per call of each step."""
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='turn-costs-')) / 'store.db'}"
    store = WhatsAppStore(url, instance_id="bench")
    if variant == "thread":
        store.run_short = store.run  # type: ignore[method-assign] - the store's thread
    resources = TemplateResources(
        store_url=url,
        catalogue_path=Path("templates/catalogue.yml"),
        rate_card_path=Path("templates/rate_card.yml"),
    )
    sender = OutboundSender(
        store,
        None,  # type: ignore[arg-type] - never called: nothing is delivered here
        access_token_for=lambda _number: "token",
        default_phone_number_id="pn",
        rules=SendRules(store, resources),
        follow_up_after_seconds=3600,
    )
    sender.hand_off_to(lambda _jobs: True)
    now = int(time.time())
    items = [
        [
            InboxItem(
                f"wamid.{contact}_{n}", f"1555{contact:07d}", "pn", f"1555{contact:07d}",
                now + n, True, "hello there",
                whatsapp_like_metadata(f"1555{contact:07d}", f"wamid.{contact}_{n}", "hi"),
            )
            for n in range(PER_CONTACT)
        ]
        for contact in range(CONTACTS)
    ]
    await store.accept([item for contact in items for item in contact])
    reply = build_messages({"text": "How can I help you?"})
    spent: dict[str, float] = defaultdict(float)

    async def timed(step: str, call) -> None:
        started = time.process_time()
        await call
        spent[step] += time.process_time() - started

    for n in range(PER_CONTACT):
        for contact in items:
            item = contact[n]
            await timed("start_turn", store.start_turn(
                item.conversation_id, [item.message_id], take_menu=True, lease_seconds=60
            ))
            await timed("send (one reply)", sender.send(
                item.conversation_id, "pn", item.recipient, reply
            ))
            await timed("mark_done", store.mark_done(item.message_id))
    store.close()
    turns = CONTACTS * PER_CONTACT
    return {step: seconds / turns * 1000 for step, seconds in spent.items()}


def main() -> int:
    variant = sys.argv[1] if len(sys.argv) > 1 else "loop"
    costs = asyncio.run(measure(variant))
    for step, ms in costs.items():
        print(f"{step:18s} {ms:.3f} ms of CPU per call")
    print(f"{'per turn':18s} {sum(costs.values()):.3f} ms ({variant})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
