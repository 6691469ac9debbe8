"""Graph API faults: every reply ends sent or failed with its reason, and none is sent twice.

The outbound sender (durable outbox + Graph client) against the real Cloud API simulator
(subprocess) with injected faults. Retries are sped up (10-50 ms backoff). The same checks
with a real ``rasa run`` under load are in bench/reliability_faults.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from simulator.process import SimulatorProcess
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.outbound import build_messages
from whatsapp_core.retry import RetryPolicy
from whatsapp_core.sender import OutboundSender
from whatsapp_core.store import WhatsAppStore

TOKEN = "faults-token"
RECIPIENTS = [f"3934000000{i:02d}" for i in range(5)]
PER_RECIPIENT = 4


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(webhook_url=None, access_token=TOKEN) as process:
        yield process


async def send_all(sim, tmp_path, faults: dict, *, timeout: float = 2.0) -> dict:
    sim.client.reset()
    sim.client.set_faults(**faults)
    store = WhatsAppStore(f"sqlite:///{tmp_path / 'faults.db'}", instance_id="faults")
    graph = GraphClient(
        sim.base_url, "v21.0", timeout=timeout,
        retry=RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, max_elapsed=10),
    )
    sender = OutboundSender(store, graph, access_token_for=lambda _: TOKEN,
                            default_phone_number_id=sim.phone_number_id)
    try:
        for n in range(PER_RECIPIENT):
            for recipient in RECIPIENTS:
                await sender.send(recipient, sim.phone_number_id, recipient,
                                  build_messages({"text": f"reply {n} to {recipient}"}))
        await asyncio.wait_for(sender.wait_idle(), 60)
        records = [r for c in RECIPIENTS for r in await store.outbound_for(c)]
    finally:
        await sender.stop()
        await graph.close()
        store.close()
        sim.client.clear_faults()
    received = Counter(m["payload"]["text"]["body"] for m in sim.client.messages())
    return {"records": records, "received": received, "stats": sim.client.stats()}


def check(result: dict) -> None:
    records = result["records"]
    assert len(records) == len(RECIPIENTS) * PER_RECIPIENT
    states = Counter(r.state for r in records)
    assert set(states) <= {"sent", "failed"}, states  # nothing left queued
    for record in records:
        if record.state == "failed":
            assert record.error_code or record.error_title, record
        else:
            assert record.wamid
    sent_texts = {r.payload["text"]["body"] for r in records if r.state == "sent"}
    duplicates = {text: n for text, n in result["received"].items() if n > 1}
    assert not duplicates, f"sent twice: {duplicates}"
    assert sent_texts <= set(result["received"]), "recorded as sent but never accepted"


@pytest.mark.parametrize(
    "faults",
    [
        {"server_errors": {"count": 8, "status": 500}},
        {"server_errors": {"count": 8, "status": 503}},
        {"throttle": {"count": 10, "code": 130429, "http_status": 429}},
        {"throttle": {"count": 6, "code": 80007}},
        {"drop_connections": {"count": 8}},
        {"server_errors": {"count": 1000, "status": 500}},  # never recovers: all fail, with reason
    ],
    ids=["500", "503", "130429-429", "80007", "dropped", "persistent-500"],
)
async def test_faults_end_in_sent_or_failed_with_reason_and_nothing_twice(sim, tmp_path, faults):
    result = await send_all(sim, tmp_path, faults)
    check(result)
    if "count" in str(faults) and faults.get("server_errors", {}).get("count") == 1000:
        assert all(r.state == "failed" for r in result["records"])
    else:
        assert all(r.state == "sent" for r in result["records"])


async def test_timed_out_sends_end_failed_with_the_reason(sim, tmp_path):
    """Graph latency above the send timeout: every attempt times out, the row ends failed
    with the title "Timeout". (The simulator drops a request whose client went away, so it cannot
    show the real risk: Meta may still deliver a send that timed out, and the retry then
    delivers it twice. See docs/reliability.md, "Timeouts".)"""
    result = await send_all(sim, tmp_path, {"latency_ms": 700}, timeout=0.5)
    check(result)
    assert {(r.state, r.error_title) for r in result["records"]} == {("failed", "Timeout")}
