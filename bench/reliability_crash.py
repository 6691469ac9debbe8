"""Crash: kill -9 ``rasa run`` during load, restart it, check every acked message was handled
exactly once (one UserUttered per wamid in Rasa's tracker database) and what the contacts
received.

The channel runs with ``recovery_lease_seconds: 2``. A loader posts single-message webhooks
from 30 contacts at a steady rate; ``rasa run`` is killed with SIGKILL a few seconds in.
Requests that got no 200 are "not acked" and are re-posted after the restart, as Meta would
re-deliver them; 50 acked ones are re-posted too (Meta's duplicates).

``--ingress``: webhooks go to the channel's ingress process (its child, which exits with
it); ``--kill ingress`` kills only the ingress process instead (the channel restarts it).

    .venv/bin/python -m bench.reliability_crash [--kill-after 4 --rate 40 --messages 300]
    .venv/bin/python -m bench.reliability_crash --ingress [--kill rasa|ingress]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
import time
from collections import Counter

from bench import payloads
from bench.loadgen import Connection, run_closed_loop
from bench.procs import APP_SECRET, wait_ingress
from bench.reliability_common import save, turn_report
from bench.stack import Stack


def paced_load(port: int, bodies: list[tuple[str, bytes]], rate: float, acked: dict) -> None:
    """Post ``bodies`` at ``rate`` per second over 8 connections; record which got a 200."""

    async def run() -> None:
        queue: asyncio.Queue = asyncio.Queue()
        for item in bodies:
            queue.put_nowait(item)
        start = time.perf_counter()
        sent = 0

        async def worker() -> None:
            nonlocal sent
            connection = Connection(port, timeout=10)
            while not queue.empty():
                wamid, raw = queue.get_nowait()
                sent += 1
                delay = start + sent / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    status, _ = await connection.request(raw)
                except Exception:  # noqa: BLE001 - the server is down: not acked
                    status = 0
                    await asyncio.sleep(0.05)
                acked[wamid] = status == 200
            await connection.close()

        await asyncio.gather(*(worker() for _ in range(8)))

    asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--contacts", type=int, default=30)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--kill-after", type=float, default=4.0)
    parser.add_argument("--lease", type=float, default=2.0,
                        help="recovery_lease_seconds (2: shorter than the backlog after the "
                        "restart; 20: longer)")
    parser.add_argument("--ingress", action="store_true",
                        help="webhooks through the channel's ingress process")
    parser.add_argument("--kill", choices=("rasa", "ingress"), default="rasa")
    args = parser.parse_args()
    if args.kill == "ingress":
        args.ingress = True
    prefix = "wamid.crash_"
    per_contact = args.messages // args.contacts
    base = int(time.time()) - 60
    items = [
        payloads.text_message(f"{prefix}{c:03d}_{n:02d}", f"4479{c:07d}",
                              payloads.text_for(n), base + n)
        for n in range(per_contact)
        for c in range(args.contacts)
    ]
    bodies = [
        (m["id"], payloads.whatsapp_request(payloads.whatsapp_envelope([m]), APP_SECRET))
        for m in items
    ]
    report: dict = {"messages": len(items), "rate_per_s": args.rate,
                    "kill_after_s": args.kill_after, "lease_s": args.lease,
                    "ingress": args.ingress, "killed": args.kill}
    options = {"recovery_lease_seconds": args.lease}
    with Stack.start(whatsapp_extra=options, rest=False, ingress=args.ingress) as stack:
        if args.ingress and stack.ingress_port is None:
            raise RuntimeError("the ingress process never answered")
        port = stack.ingress_port if args.ingress else stack.rasa_port
        stack.point_webhooks(port)
        stack.register_with_simulator(items)
        acked: dict[str, bool] = {}
        loader = threading.Thread(
            target=paced_load, args=(port, bodies, args.rate, acked), daemon=True
        )
        started = time.monotonic()
        loader.start()
        time.sleep(args.kill_after)
        before_kill = stack.inbox_states(prefix)
        if args.kill == "ingress":
            os.kill(stack.ingress_pid(), signal.SIGKILL)
        else:
            stack.rasa.kill9()
        killed_at = time.monotonic() - started
        loader.join(timeout=120)
        report["killed_at_s"] = round(killed_at, 2)
        report["inbox_at_kill"] = dict(before_kill)
        report["acked"] = sum(acked.values())
        report["not_acked"] = len(acked) - sum(acked.values())
        report["inbox_after_kill"] = dict(stack.inbox_states(prefix))
        report["turns_before_restart"] = sum(stack.user_turns(prefix).values())
        restart = time.monotonic()
        if args.kill == "ingress":  # the channel restarts it by itself
            if not wait_ingress(port, stack.rasa, timeout=30):
                raise RuntimeError("the ingress process was not restarted")
        else:
            stack.restart_rasa()
        report["restart_s"] = round(time.monotonic() - restart, 1)
        redeliver = [raw for wamid, raw in bodies if not acked.get(wamid)]
        redeliver += [raw for wamid, raw in bodies if acked.get(wamid)][:50]
        result = run_closed_loop(port, [redeliver[i::8] for i in range(8)],
                                 time_limit=120)
        report["redelivered"] = {"posts": len(redeliver), "http": result.statuses()}
        done = stack.wait_done(prefix, len(items), timeout=180)
        report["settled"] = stack.wait_quiet(prefix, len(items))
        report["all_done_after_restart_s"] = (
            round(time.monotonic() - restart, 1) if done else None
        )
        time.sleep(max(4.0, args.lease * 1.5))  # a late second turn would show
        report["claims"] = dict(stack.rows(
            "SELECT attempts, count(*) FROM whatsapp_inbox WHERE message_id LIKE :p "
            "GROUP BY attempts", p=prefix + "%"))
        report.update(turn_report(stack, prefix, {m["id"] for m in items}))
        # replies: BotUttered per contact (tracker) vs outbox rows vs what the simulator got
        contacts = sorted({m["from"] for m in items})
        bot_events = Counter(dict(stack.tracker_rows(
            "SELECT sender_id, count(*) FROM events WHERE type_name = 'bot' GROUP BY sender_id")))
        outbox_rows = Counter(dict(stack.rows(
            "SELECT conversation_id, count(*) FROM whatsapp_outbox GROUP BY conversation_id")))
        received = Counter(m["to"] for m in stack.sim.client.messages())
        extra_outbox = {c: outbox_rows[c] - bot_events[c] for c in contacts
                        if outbox_rows[c] != bot_events[c]}
        extra_received = {c: received[c] - bot_events[c] for c in contacts
                          if received[c] != bot_events[c]}
        report["bot_uttered"] = sum(bot_events[c] for c in contacts)
        report["outbox_rows"] = sum(outbox_rows[c] for c in contacts)
        report["received_by_contacts"] = sum(received[c] for c in contacts)
        report["contacts_with_outbox_rows_not_in_tracker"] = extra_outbox
        report["contacts_receiving_more_or_less_than_tracker"] = extra_received
        report["outbox_states"] = dict(stack.rows(
            "SELECT state, count(*) FROM whatsapp_outbox GROUP BY state"))
        log = stack.rasa.tail(200_000)
        report["recovery_log_lines"] = [line for line in log.splitlines()
                                        if "recovery" in line.lower()][:10]
    print(
        f"lease {args.lease:g} s, killed at {report['killed_at_s']} s: {report['acked']} acked, "
        f"{report['not_acked']} not acked; turns before restart "
        f"{report['turns_before_restart']}; after restart: "
        f"{report['user_turns']} UserUttered for {report['expected']} wamids "
        f"({report['duplicate_wamids']} duplicated, {report['lost_wamids']} lost); "
        f"BotUttered {report['bot_uttered']}, outbox rows {report['outbox_rows']}, received "
        f"{report['received_by_contacts']}; inbox {report['inbox']}",
        flush=True,
    )
    tag = f"-ingress-kill-{args.kill}" if args.ingress else ""
    print("saved", save(f"reliability-crash-lease{args.lease:g}{tag}", report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
