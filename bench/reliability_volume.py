"""Duplicated, reordered and batched webhooks at volume against a real ``rasa run``.

500 messages (50 contacts x 10), every message POSTed twice, 10 per POST, shuffled, from 8
concurrent clients. Counted afterwards: UserUttered events per wamid in Rasa's tracker
database (exactly one each), inbox states, replies the simulator accepted.

Run with the default ``recovery_lease_seconds`` (30) and with a lease shorter than the
backlog (2 s), which exposed the re-claim bug of docs/reliability.md (fixed in d897d78).

    .venv/bin/python -m bench.reliability_volume [--lease 30 --lease 2]
"""

from __future__ import annotations

import argparse
import random
import time

from bench.reliability_common import batched_requests, post, save, turn_report
from bench.stack import Stack


def scenario(lease: float, contacts: int = 50, per_contact: int = 10) -> dict:
    options = {"recovery_lease_seconds": lease}
    with Stack.start(whatsapp_extra=options, rest=False) as stack:
        prefix = f"wamid.vol{int(lease)}_"
        items = [
            m
            for c in range(contacts)
            for m in [
                {"from": f"4478{c:07d}", "id": f"{prefix}{c:03d}_{n:02d}", "type": "text",
                 "timestamp": str(int(time.time()) - 60 + n),
                 "text": {"body": ["hello", "I need help with my order", "thanks"][n % 3]}}
                for n in range(per_contact)
            ]
        ]
        stack.register_with_simulator(items)
        copies = items * 2
        random.Random(5).shuffle(copies)
        started = time.perf_counter()
        result = post(stack, batched_requests(copies, 10, 8))
        ack_s = time.perf_counter() - started
        done = stack.wait_done(prefix, len(items), timeout=240)
        settled = stack.wait_quiet(prefix, len(items), quiet_s=max(8.0, lease * 3))
        time.sleep(max(3.0, lease * 1.5))  # long enough for a late re-claim to show
        report = turn_report(stack, prefix, {m["id"] for m in items})
        report["settled"] = settled
        report["claims"] = dict(stack.rows(
            "SELECT attempts, count(*) FROM whatsapp_inbox WHERE message_id LIKE :p "
            "GROUP BY attempts", p=prefix + "%"))
        report["recovery_log_lines"] = sum(
            1 for line in stack.rasa.tail(2_000_000).splitlines() if "WhatsApp recovery" in line)
        report.update(
            lease_s=lease,
            posts=len(result.samples),
            http=result.statuses(),
            all_acked_in_s=round(ack_s, 2),
            all_terminal_in_s=round(done - started, 2) if done else None,
            replies_accepted_by_simulator=stack.sim.client.stats()["sends_accepted"],
            outbox=dict(stack.rows("SELECT state, count(*) FROM whatsapp_outbox GROUP BY state")),
        )
        return report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lease", type=float, action="append")
    args = parser.parse_args()
    reports = []
    for lease in args.lease or [30.0, 2.0]:
        report = scenario(lease)
        reports.append(report)
        print(
            f"lease {lease:>4} s: {report['posts']} POSTs {report['http']}, "
            f"{report['user_turns']} UserUttered for {report['expected']} wamids "
            f"({report['duplicate_wamids']} duplicated, {report['lost_wamids']} lost), "
            f"acked in {report['all_acked_in_s']} s, settled: {report['settled']['reason']}, "
            f"inbox {report['inbox']}, claims {report['claims']}, simulator accepted "
            f"{report['replies_accepted_by_simulator']} replies",
            flush=True,
        )
    print("saved", save("reliability-volume", {"scenarios": reports}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
