"""Shared pieces of the bench/reliability_*.py scripts: posting batches, checking turns."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench import payloads
from bench.loadgen import run_closed_loop
from bench.procs import APP_SECRET, REPO_ROOT
from bench.stack import Stack

RESULTS = REPO_ROOT / "bench" / "results"


def batched_requests(items: list[dict], batch: int, clients: int) -> list[list[bytes]]:
    bodies = [
        payloads.whatsapp_request(payloads.whatsapp_envelope(items[i : i + batch]), APP_SECRET)
        for i in range(0, len(items), batch)
    ]
    per_client: list[list[bytes]] = [[] for _ in range(clients)]
    for index, body in enumerate(bodies):
        per_client[index % clients].append(body)
    return per_client


def post(stack: Stack, per_client: list[list[bytes]], port: int | None = None):
    return run_closed_loop(port or stack.rasa_port, per_client, time_limit=300)


def turn_report(stack: Stack, prefix: str, expected: set[str]) -> dict:
    """UserUttered per wamid (Rasa's events table), inbox states, replies at the simulator."""
    turns = stack.user_turns(prefix)
    duplicates = {w: n for w, n in turns.items() if n > 1}
    lost = sorted(expected - set(turns))
    return {
        "expected": len(expected),
        "user_turns": sum(turns.values()),
        "distinct_wamids_with_a_turn": len(turns),
        "duplicate_wamids": len(duplicates),
        "duplicate_examples": dict(list(duplicates.items())[:5]),
        "lost_wamids": len(lost),
        "lost_examples": lost[:5],
        "inbox": dict(stack.inbox_states(prefix)),
    }


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path
