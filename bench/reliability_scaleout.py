"""Scale-out: two ``rasa run`` instances behind one round-robin port, PostgreSQL tracker
store (the channel's tables land in the same database) and Redis lock store.

Scenario "steady": 30 contacts write at once, each contact's messages one after the other
(the next only after the previous was acked), every message delivered twice. Checked in
PostgreSQL: one UserUttered per wamid, and per contact the UserUttered events in the order
the messages were sent; which instance accepted what (``whatsapp_inbox.owner``).

Scenario "failover" (``--failover``): the same load, and instance 1 is killed with SIGKILL
one second in; the proxy answers 502 for it (the loader re-posts, as Meta would), instance 2's
sweep takes over what instance 1 had accepted.

``--ingress``: each instance runs its ingress process (``ingress_port``) and the proxy sends
the webhooks there (with ``--failover`` the killed instance's ingress process exits with it).

    .venv/bin/python -m bench.reliability_scaleout [--failover] [--ingress]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests
import sqlalchemy as sa

from bench import payloads
from bench.loadgen import Connection
from bench.procs import APP_SECRET, free_port, start_actions, start_simulator, wait_ingress
from bench.reliability_common import save
from bench.scaleout import Postgres, Redis, rasa_configs, start_proxy, start_rasa


def load(port: int, per_contact: list[list[tuple[str, bytes]]], report: dict) -> None:
    """One client per contact: each message twice, the next only after an ack (retrying
    non-200 answers like Meta, up to 60 times)."""

    async def contact(items: list[tuple[str, bytes]]) -> None:
        connection = Connection(port, timeout=30)
        for _wamid, raw in items:
            for _copy in range(2):
                for _attempt in range(60):
                    try:
                        status, _ = await connection.request(raw)
                    except Exception:  # noqa: BLE001
                        status = 0
                    report["http"][status] = report["http"].get(status, 0) + 1
                    if status == 200:
                        break
                    await asyncio.sleep(0.5)
        await connection.close()

    async def run() -> None:
        await asyncio.gather(*(contact(items) for items in per_contact))

    asyncio.run(run())


def check(engine: sa.engine.Engine, prefix: str, expected: dict[str, list[str]]) -> dict:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT sender_id, data FROM events WHERE type_name = 'user' ORDER BY id")).fetchall()
        owners = connection.execute(sa.text(
            "SELECT owner, state, count(*) FROM whatsapp_inbox WHERE message_id LIKE :p "
            "GROUP BY owner, state"), {"p": prefix + "%"}).fetchall()
    per_wamid: Counter = Counter()
    order: dict[str, list[str]] = defaultdict(list)
    for sender, data in rows:
        wamid = json.loads(data).get("message_id") or ""
        if wamid.startswith(prefix):
            per_wamid[wamid] += 1
            order[sender].append(wamid)
    out_of_order = {}
    for sender, wamids in expected.items():
        first_turns = list(dict.fromkeys(w for w in order.get(sender, []) if w in set(wamids)))
        if first_turns != [w for w in wamids if w in set(first_turns)]:
            out_of_order[sender] = first_turns
    return {
        "expected": sum(len(w) for w in expected.values()),
        "user_turns": sum(per_wamid.values()),
        "duplicate_wamids": sum(1 for n in per_wamid.values() if n > 1),
        "lost_wamids": sum(len(w) for w in expected.values()) - len(per_wamid),
        "contacts_out_of_order": len(out_of_order),
        "out_of_order_examples": dict(list(out_of_order.items())[:3]),
        "inbox_by_owner_state": [list(map(str, row)) for row in owners],
    }


def scenario(name: str, failover: bool, lease: float, contacts: int = 30,
             per_contact: int = 10, ingress: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="wa-scale-"))
    pg = Postgres()
    redis_ = Redis()
    procs = []
    sim = None
    try:
        actions_port = free_port()
        actions = start_actions(tmp, actions_port, pg.url())
        procs.append(actions)
        sim = start_simulator(None)  # replies only; statuses are not the point here
        configs = rasa_configs(tmp, 2, sim.base_url, actions_port, pg, redis_,
                               {"recovery_lease_seconds": lease})
        if ingress:
            for config in configs:
                config.ingress_port = free_port()
        started = time.monotonic()
        rasas = [start_rasa(config) for config in configs]
        procs += rasas
        pairs = zip(configs, rasas, strict=True)
        if ingress and not all(wait_ingress(c.ingress_port, rasa) for c, rasa in pairs):
            raise RuntimeError("an ingress process never answered")
        startup = time.monotonic() - started
        ports = [c.ingress_port if ingress else c.port for c in configs]
        proxy, proxy_port = start_proxy(tmp, [f"http://127.0.0.1:{port}" for port in ports])
        procs.append(proxy)
        prefix = f"wamid.{name}_"
        base = int(time.time()) - 60
        messages = [[payloads.text_message(f"{prefix}{c:03d}_{n:02d}", f"4481{c:07d}",
                                           payloads.text_for(n), base + n)
                     for n in range(per_contact)] for c in range(contacts)]
        # register with the simulator (window, read receipts) without a turn
        flat = [m for ms in messages for m in ms]
        requests.post(f"{sim.base_url}/_sim/webhook", params={"sign": "false"},
                      data=payloads.meta_json(payloads.whatsapp_envelope(flat)), timeout=30)
        per_contact_requests = [
            [(m["id"], payloads.whatsapp_request(payloads.whatsapp_envelope([m]), APP_SECRET))
             for m in ms] for ms in messages
        ]
        report: dict = {"scenario": name, "lease_s": lease, "ingress": ingress, "http": {},
                        "rasa_startup_s": round(startup, 1)}
        loader = threading.Thread(target=load, args=(proxy_port, per_contact_requests, report))
        t0 = time.monotonic()
        loader.start()
        if failover:
            time.sleep(1.0)
            rasas[0].kill9()
            report["killed_instance_1_at_s"] = round(time.monotonic() - t0, 1)
        loader.join(timeout=600)
        report["load_s"] = round(time.monotonic() - t0, 1)
        engine = sa.create_engine(pg.url(), future=True)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                open_rows = connection.execute(sa.text(
                    "SELECT count(*) FROM whatsapp_inbox WHERE message_id LIKE :p "
                    "AND state = 'accepted'"), {"p": prefix + "%"}).scalar()
            if open_rows == 0:
                break
            time.sleep(0.5)
        report["all_done_s"] = round(time.monotonic() - t0, 1)
        time.sleep(min(lease, 30) + 1)  # past one lease: a late re-claim would show
        report["proxy"] = requests.get(f"http://127.0.0.1:{proxy_port}/_proxy/stats",
                                       timeout=10).json()
        report.update(check(engine, prefix, {ms[0]["from"]: [m["id"] for m in ms]
                                             for ms in messages}))
        report["replies_accepted_by_simulator"] = sim.client.stats()["sends_accepted"]
        engine.dispose()
        return report
    finally:
        for proc in reversed(procs):
            proc.stop()
        if sim is not None:
            sim.stop()
        redis_.stop()
        pg.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--failover", action="store_true")
    parser.add_argument("--lease", type=float, default=60.0,
                        help="recovery_lease_seconds of the steady scenario")
    parser.add_argument("--failover-lease", type=float, default=10.0)
    parser.add_argument("--ingress", action="store_true",
                        help="webhooks through each instance's ingress process")
    args = parser.parse_args()
    tag = "i" if args.ingress else ""
    reports = [scenario(f"steady{tag}{args.lease:g}", False, args.lease, ingress=args.ingress)]
    if args.failover:
        reports.append(scenario(f"failover{tag}{args.failover_lease:g}", True,
                                args.failover_lease, ingress=args.ingress))
    for report in reports:
        print(json.dumps({k: v for k, v in report.items() if k != "out_of_order_examples"}),
              flush=True)
    print("saved", save("reliability-scaleout", {"scenarios": reports}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
