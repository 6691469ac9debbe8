"""100,000 mutated webhook bodies, signatures and headers: no 5xx, no crash, no memory growth.

In-process against the receiver (real store on a temporary SQLite file, no-op turns; cases
go 32 at a time, as concurrent POSTs would), then 5,000 more over real HTTP to the channel
on a Sanic server in this process, a third of them with hand-written hostile headers, then
20,000 connections of byte-mutated raw requests to the ingress process's HTTP server.
RSS of this process is sampled every 10,000 cases.

    .venv/bin/python -m bench.reliability_fuzz [--cases 100000 --http-cases 5000
                                                --ingress-cases 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from bench.procs import rss_mb
from bench.reliability_common import save
from tests.conftest import CORPUS_DIR
from tests.reliability import fuzzing
from tests.reliability import test_ingress_http_fuzz as ingress_fuzz
from tests.reliability.conftest import SECRET, credentials, start_server
from tests.reliability.test_fuzz import RAW_HEADER_CASES, raw_post
from whatsapp_core.config import ChannelConfig
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.receiver import WebhookReceiver
from whatsapp_core.sender import OutboundSender
from whatsapp_core.store import WhatsAppStore


async def in_process(cases: int, tmp: Path, seed: int) -> dict:
    corpus = fuzzing.load_corpus(CORPUS_DIR)
    config = ChannelConfig.from_credentials(credentials(tmp))
    store = WhatsAppStore(config.store_url, instance_id="fuzz")
    graph = GraphClient("http://127.0.0.1:9", timeout=0.2)
    sender = OutboundSender(store, graph, access_token_for=lambda _: "t",
                            default_phone_number_id=config.phone_number_id)
    turns = Counter()

    async def turn(item) -> None:
        turns[item.message_id] += 1

    receiver = WebhookReceiver(config, store, sender, turn)
    rng = random.Random(seed)
    statuses: Counter = Counter()
    kinds: Counter = Counter()
    crashes: list[str] = []
    rss: list[tuple[int, float]] = [(0, rss_mb(os.getpid()))]
    started = time.monotonic()

    async def one(body: bytes, signature: str | None) -> None:
        try:
            result = await receiver.receive(body, signature)
            statuses[result.http_status] += 1
        except Exception:  # noqa: BLE001 - what we are looking for
            statuses["exception"] += 1
            if len(crashes) < 5:
                crashes.append(traceback.format_exc(limit=3))

    done = 0
    while done < cases:
        batch = []
        for _ in range(min(32, cases - done)):
            body, signature, kind = fuzzing.case(corpus, SECRET, rng)
            kinds[kind] += 1
            batch.append(one(body, signature))
        await asyncio.gather(*batch)
        done += len(batch)
        if done % 10_000 < 32 and done >= 10_000 and rss[-1][0] < done // 10_000 * 10_000:
            await receiver.wait_idle()
            rss.append((done // 10_000 * 10_000, rss_mb(os.getpid())))
    await receiver.wait_idle()
    elapsed = time.monotonic() - started
    await receiver.stop()
    await graph.close()
    store.close()
    unexpected = {k: v for k, v in statuses.items() if k not in fuzzing.ALLOWED}
    return {
        "cases": cases,
        "seconds": round(elapsed, 1),
        "kinds": dict(kinds),
        "http_statuses": {str(k): v for k, v in statuses.items()},
        "unexpected": unexpected,
        "crashes": crashes,
        "turns": sum(turns.values()),
        "duplicate_turns": sum(1 for n in turns.values() if n > 1),
        "rss_mb": rss,
        "rss_growth_mb_after_warmup": round(rss[-1][1] - rss[min(2, len(rss) - 1)][1], 1),
        "unserved_phone_number_ids_remembered": len(receiver.acceptor._unserved_logged),
    }


async def over_http(cases: int, tmp: Path, seed: int) -> dict:
    corpus = fuzzing.load_corpus(CORPUS_DIR)
    server = await start_server(credentials(tmp))
    port = int(server.url.rsplit(":", 1)[1])
    rng = random.Random(seed)
    statuses: Counter = Counter()
    rss_before = rss_mb(os.getpid())
    started = time.monotonic()
    try:
        for index in range(cases):
            body, signature, _ = fuzzing.case(corpus, SECRET, rng)
            if index % 3 == 0:
                head = rng.choice(RAW_HEADER_CASES)
                if b"Content-Length" not in head:
                    head += f"Content-Length: {len(body)}\r\n".encode()
                status = await raw_post(port, head, body)
            else:
                status = await server.post(body, signature=signature)
            statuses[status] += 1
        healthy = await server.post(json.dumps(corpus[0]).encode())
    finally:
        await server.stop()
    return {
        "cases": cases,
        "seconds": round(time.monotonic() - started, 1),
        "http_statuses": {str(k): v for k, v in statuses.items()},
        "fivexx": sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500),
        "closed_without_answer": statuses.get(None, 0),
        "good_webhook_after_fuzz": healthy,
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_after": round(rss_mb(os.getpid()), 1),
    }


async def over_ingress_http(cases: int, tmp: Path, seed: int) -> dict:
    """The ingress process's HTTP server with its webhook endpoint: raw requests mutated
    at the byte level, pipelined, written in random pieces (test_ingress_http_fuzz)."""
    errors: list[str] = []

    class Errors(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if ingress_fuzz.is_crash(record):
                errors.append(record.getMessage())

    handler = Errors(logging.ERROR)
    logging.getLogger().addHandler(handler)
    rss_before = rss_mb(os.getpid())
    started = time.monotonic()
    try:
        async with ingress_fuzz.serving(tmp) as port:
            statuses = await ingress_fuzz.fuzz(port, cases, random.Random(seed))
            healthy = await ingress_fuzz.good_webhook_answer(port)
    finally:
        logging.getLogger().removeHandler(handler)
    return {
        "cases": cases,
        "seconds": round(time.monotonic() - started, 1),
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "fivexx": sum(v for k, v in statuses.items() if k >= 500),
        "crashes_logged": errors[:20],
        "good_webhook_after_fuzz": healthy,
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_after": round(rss_mb(os.getpid()), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--http-cases", type=int, default=5_000)
    parser.add_argument("--ingress-cases", type=int, default=20_000,
                        help="connections to the ingress process's HTTP server")
    parser.add_argument("--seed", type=int, default=20251125)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wa-fuzz-"))
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    (tmp / "c").mkdir()
    report = {"in_process": asyncio.run(in_process(args.cases, tmp / "a", args.seed))}
    print("in-process:", json.dumps({k: v for k, v in report["in_process"].items()
                                     if k != "crashes"}), flush=True)
    report["over_http"] = asyncio.run(over_http(args.http_cases, tmp / "b", args.seed + 1))
    print("over HTTP:", json.dumps(report["over_http"]), flush=True)
    report["over_ingress_http"] = asyncio.run(
        over_ingress_http(args.ingress_cases, tmp / "c", args.seed + 2)
    )
    print("over the ingress HTTP server:", json.dumps(report["over_ingress_http"]), flush=True)
    print("saved", save("reliability-fuzz", report))
    ingress = report["over_ingress_http"]
    failed = (
        report["in_process"]["unexpected"] or report["over_http"]["fivexx"]
        or ingress["fivexx"] or ingress["crashes_logged"]
        or ingress["good_webhook_after_fuzz"] != [200]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
