"""Graph API faults during load: every reply is delivered or recorded as failed with its
reason; none is sent twice.

One ``rasa run`` (``send_timeout_seconds: 1``); for each fault the simulator injects it,
60 contact messages (20 contacts x 3) are posted, the fault is cleared, and once every
turn is done and no reply is queued the outbox (``whatsapp_outbox`` state / error_code /
error_title) is compared with the tracker (BotUttered) and with what the simulator
accepted per contact.

    .venv/bin/python -m bench.reliability_faults [--only timeouts]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import requests

from bench import payloads
from bench.loadgen import run_closed_loop
from bench.procs import APP_SECRET
from bench.reliability_common import save
from bench.stack import Stack

FAULTS = {
    "http_500_x20": {"server_errors": {"count": 20, "status": 500}},
    "http_503_x20": {"server_errors": {"count": 20, "status": 503}},
    "throttle_130429_http429_x30": {"throttle": {"count": 30, "code": 130429, "http_status": 429}},
    "throttle_131056_pair_x10": {"throttle": {"count": 10, "code": 131056}},
    "dropped_connections_x20": {"drop_connections": {"count": 20}},
    "timeouts_latency_1500ms_vs_1s": {"latency_ms": 1500},
    "server_errors_x1000_persistent": {"server_errors": {"count": 1000, "status": 500}},
}


def run_fault(stack: Stack, name: str, spec: dict, index: int) -> dict:
    sim = stack.sim.base_url
    prefix = f"wamid.fault{index}_"
    contacts = [f"4480{index:02d}{c:05d}" for c in range(20)]
    base = int(time.time()) - 60
    items = [payloads.text_message(f"{prefix}{c}_{n}", contact, payloads.text_for(n), base + n)
             for c, contact in enumerate(contacts) for n in range(3)]
    stack.register_with_simulator(items)
    sent_before = Counter(m["to"] for m in stack.sim.client.messages())
    requests.post(f"{sim}/_sim/faults", json=spec, timeout=10).raise_for_status()
    started = time.monotonic()
    reqs = [[payloads.whatsapp_request(payloads.whatsapp_envelope([m]), APP_SECRET)
             for m in items[i::8]] for i in range(8)]
    result = run_closed_loop(stack.rasa_port, reqs, time_limit=120)
    # keep the fault on while the replies go out (persistent faults and latency)
    time.sleep(3 if "latency_ms" in spec else 1)
    if "latency_ms" in spec or "persistent" in name:
        time.sleep(8)
    faults_served = stack.sim.client.stats()["faults_served"]
    requests.delete(f"{sim}/_sim/faults", timeout=10)
    done = stack.wait_done(prefix, len(items), timeout=240)
    time.sleep(1.0)
    placeholders = ",".join(f"'{c}'" for c in contacts)
    rows = stack.rows(
        f"SELECT conversation_id, state, error_code, error_title, attempts FROM whatsapp_outbox "
        f"WHERE conversation_id IN ({placeholders})"
    )
    bot = Counter(dict(stack.tracker_rows(
        f"SELECT sender_id, count(*) FROM events WHERE type_name = 'bot' "
        f"AND sender_id IN ({placeholders}) GROUP BY sender_id")))
    received = Counter(m["to"] for m in stack.sim.client.messages() if m["to"] in contacts)
    received.subtract(sent_before)
    states = Counter(row.state for row in rows)
    failed = [row for row in rows if row.state == "failed"]
    not_sent_per_contact = Counter(row.conversation_id for row in rows if row.state == "failed")
    expected_received = {c: sum(1 for r in rows if r.conversation_id == c and r.state != "failed")
                         for c in contacts}
    duplicates = {c: received[c] - expected_received[c] for c in contacts
                  if received[c] > expected_received[c]}
    missing = {c: expected_received[c] - received[c] for c in contacts
               if received[c] < expected_received[c]}
    return {
        "fault": name,
        "spec": spec,
        "posts": result.statuses(),
        "turns_done_in_s": round(time.monotonic() - started, 1) if done else None,
        "faults_served": faults_served,
        "bot_uttered": sum(bot.values()),
        "outbox_rows": len(rows),
        "outbox_states": dict(states),
        "queued_left": states.get("queued", 0),
        "failed_without_reason": sum(1 for r in failed if not (r.error_code or r.error_title)),
        "failed_reasons": dict(Counter(f"{r.error_code} {r.error_title}" for r in failed)),
        "max_attempts": max((r.attempts for r in rows), default=0),
        "received_by_contacts": sum(received[c] for c in contacts),
        "contacts_with_duplicates": duplicates,
        "duplicate_messages": sum(duplicates.values()),
        "contacts_missing_sent_replies": missing,
        "failed_per_contact": dict(not_sent_per_contact),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", action="append")
    args = parser.parse_args()
    names = [n for n in FAULTS if not args.only or any(o in n for o in args.only)]
    reports = []
    options = {"send_timeout_seconds": 1, "recovery_lease_seconds": 30}
    with Stack.start(whatsapp_extra=options, rest=False) as stack:
        for index, name in enumerate(names):
            report = run_fault(stack, name, FAULTS[name], index)
            reports.append(report)
            print(
                f"{name:32s} outbox {report['outbox_states']} (queued left "
                f"{report['queued_left']}, failed w/o reason {report['failed_without_reason']}),"
                f" received {report['received_by_contacts']}, duplicates "
                f"{report['duplicate_messages']}, reasons {report['failed_reasons']}",
                flush=True,
            )
    print("saved", save("reliability-faults", {"faults": reports}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
