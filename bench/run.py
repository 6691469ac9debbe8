"""``make bench``: the WhatsApp channel against Rasa's REST and Facebook channels, one run.

One ``rasa run`` (same trained model, SQLite tracker store) serves the WhatsApp channel,
Rasa's ``rest`` channel and Rasa's ``facebook`` channel; the simulator stands in for the
Cloud API (and sends sent/delivered/read statuses back, as Meta does); a stub stands in
for the Messenger Send API. Each round measures, channel order rotated:

1. ack latency (closed-loop clients, distinct contacts, 1 / 8 / 32 at once);
2. end-to-end throughput at 32 clients (WhatsApp: first POST -> last reply accepted by
   the simulator; REST: request -> response with the replies; Facebook: request ->
   response, which Rasa sends after the turn);
3. WhatsApp throughput with 100 ms of Graph API latency;
4. status-webhook throughput vs a bare Sanic HMAC endpoint.

Then core costs per corpus payload (in-process) and RSS per 1,000 conversations. Results:
``docs/benchmarks.md`` (rendered) and ``bench/results/bench-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import requests
import sqlalchemy as sa

from bench import loadgen, micro, payloads
from bench.cpu import CpuMeter
from bench.loadgen import percentile, run_closed_loop
from bench.procs import APP_SECRET, FB_SECRET, REPO_ROOT, start_bare_sanic
from bench.render import render_file
from bench.stack import Stack, text_messages, whatsapp_requests
from whatsapp_core.schema import outbox

CONCURRENCY = (1, 8, 32)
MESSAGES_PER_CLIENT = {1: 40, 8: 12, 32: 10}
CHANNELS = ("whatsapp", "rest", "facebook")
STATUS_WAMIDS_PER_CLIENT = 40  # x 32 clients x 2 statuses (delivered, read)
BARE_REPEAT = 3
TIME_BUDGET_S = 14 * 60


class Bench:
    def __init__(self, stack: Stack, log) -> None:
        self.stack = stack
        self.log = log
        self.port = stack.rasa_port
        self.run_id = 0
        self.bare_pid: int | None = None
        self.rest_metadata = False  # REST messages carry WhatsApp-sized metadata (what-if)

    def meter(self, *, bare: bool = False) -> CpuMeter:
        pids = {"rasa": self.stack.rasa.pid, "simulator": self.stack.sim._process.pid}
        if self.stack.actions is not None:
            pids["actions"] = self.stack.actions.pid
        if self.stack.fb_stub is not None:
            pids["fb_stub"] = self.stack.fb_stub.pid
        if bare and self.bare_pid:
            pids["bare"] = self.bare_pid
        return CpuMeter(pids)

    def _prefix(self, label: str) -> str:
        self.run_id += 1
        return f"wamid.b{self.run_id}{label}_"

    # ------------------------------------------------------------ channels
    def whatsapp(self, clients: int, per_client: int, label: str) -> dict:
        prefix = self._prefix(label)
        contacts = [f"1555{self.run_id:03d}{i:04d}" for i in range(clients)]
        messages = text_messages(prefix, contacts, per_client)
        self.stack.register_with_simulator([m for c in messages for m in c])
        reqs = whatsapp_requests(messages)
        total = clients * per_client
        with self.meter() as meter:
            result = run_closed_loop(self.port, reqs, time_limit=120)
            done_at = self.stack.wait_done(prefix, total, timeout=180)
        states = self.stack.inbox_states(prefix)
        out = _latency_summary(result)
        out["cpu"] = _cpu(meter, total)
        out["messages"] = total
        out["inbox"] = dict(states)
        if done_at is None:
            out["throughput"] = None
            out["note"] = "did not finish within 180 s"
        else:
            out["throughput"] = total / (done_at - result.started)
            out["drain_s"] = done_at - result.started
        return out

    def rest(self, clients: int, per_client: int, label: str) -> dict:
        self.run_id += 1
        def request(sender: str, n: int) -> bytes:
            text = payloads.text_for(n)
            metadata = (
                payloads.whatsapp_like_metadata(sender, f"wamid.{sender}_{n}", text)
                if self.rest_metadata
                else None
            )
            return payloads.rest_request(sender, text, metadata)

        reqs = [
            [request(f"rest{self.run_id}{label}{i}", n) for n in range(per_client)]
            for i in range(clients)
        ]
        with self.meter() as meter:
            result = run_closed_loop(self.port, reqs, time_limit=180, keep_body=True)
        out = _latency_summary(result)
        out["cpu"] = _cpu(meter, clients * per_client)
        out["messages"] = clients * per_client
        out["replies"] = sum(len(json.loads(s.body or b"[]")) for s in result.samples
                             if s.status == 200)
        out["throughput"] = result.ok / result.elapsed
        return out

    def facebook(self, clients: int, per_client: int, label: str) -> dict:
        self.run_id += 1
        before = self.stack.fb_stats()["messages"]
        reqs = [
            [
                payloads.facebook_request(
                    f"fb{self.run_id}{label}{i}", f"mid.{self.run_id}.{i}.{n}",
                    payloads.text_for(n), FB_SECRET,
                )
                for n in range(per_client)
            ]
            for i in range(clients)
        ]
        with self.meter() as meter:
            result = run_closed_loop(self.port, reqs, time_limit=180)
        out = _latency_summary(result)
        out["cpu"] = _cpu(meter, clients * per_client)
        out["messages"] = clients * per_client
        out["replies"] = self.stack.fb_stats()["messages"] - before
        out["throughput"] = result.ok / result.elapsed
        return out

    # ------------------------------------------------------------ statuses
    def prepare_status_rows(self, label: str, count: int) -> list[tuple[str, str]]:
        """``count`` outbox rows in state ``sent`` (as if replies had just gone out)."""
        now = time.time()
        rows = [(f"wamid.st{label}_{i:05d}", f"1666{i % 1000:07d}") for i in range(count)]
        with self.stack.engine().begin() as connection:
            connection.execute(
                sa.insert(outbox),
                [
                    {
                        "conversation_id": recipient, "phone_number_id": payloads.PHONE_NUMBER_ID,
                        "recipient": recipient, "kind": "text",
                        "payload_json": '{"type": "text"}', "state": "sent", "wamid": wamid,
                        "attempts": 1, "owner": "bench", "created_at": now, "updated_at": now,
                    }
                    for wamid, recipient in rows
                ],
            )
        return rows

    def status_requests(self, label: str, clients: int) -> tuple[list[list[bytes]], list[str]]:
        rows = self.prepare_status_rows(label, clients * STATUS_WAMIDS_PER_CLIENT)
        per_client: list[list[bytes]] = [[] for _ in range(clients)]
        for index, (wamid, recipient) in enumerate(rows):
            for state in ("delivered", "read"):
                envelope = payloads.whatsapp_envelope(
                    statuses=[payloads.status(wamid, recipient, state)]
                )
                per_client[index % clients].append(
                    payloads.whatsapp_request(envelope, APP_SECRET)
                )
        return per_client, [w for w, _ in rows]

    def statuses(self, label: str, bare_port: int, clients: int = 32) -> dict:
        reqs, wamids = self.status_requests(label, clients)
        with self.meter() as meter:
            result = run_closed_loop(self.port, reqs, time_limit=120)
        moved = self.stack.scalar(
            "SELECT count(*) FROM whatsapp_outbox WHERE wamid LIKE :p AND state = 'read'",
            p=f"wamid.st{label}_%",
        )
        with self.meter(bare=True) as bare_meter:
            bare = run_closed_loop(bare_port, [r * BARE_REPEAT for r in reqs], time_limit=120)
        return {
            "cpu": _cpu(meter, len(result.samples)),
            "bare_cpu": _cpu(bare_meter, len(bare.samples)),
            "requests": len(result.samples),
            "statuses_http": result.statuses(),
            "rows_moved_to_read": moved,
            "rows": len(wamids),
            "whatsapp_rps": result.ok / result.elapsed,
            "whatsapp_p50_ms": percentile(result.latencies_ms(), 50),
            "whatsapp_p99_ms": percentile(result.latencies_ms(), 99),
            "bare_requests": len(bare.samples),
            "bare_statuses_http": bare.statuses(),
            "bare_rps": bare.ok / bare.elapsed,
            "bare_p99_ms": percentile(bare.latencies_ms(), 99),
        }

    # ------------------------------------------------------------ memory
    def conversations(self, count: int, clients: int = 32) -> dict:
        prefix = self._prefix("mem")
        contacts = [f"1777{self.run_id:03d}{i:05d}" for i in range(count)]
        messages = [
            [payloads.text_message(f"{prefix}{c}", c, payloads.text_for(i))]
            for i, c in enumerate(contacts)
        ]
        self.stack.register_with_simulator([m for c in messages for m in c])
        per_client = [[] for _ in range(clients)]
        for index, message in enumerate(messages):
            per_client[index % clients].append(message[0])
        reqs = whatsapp_requests(per_client)
        started = time.perf_counter()
        run_closed_loop(self.port, reqs, time_limit=120)
        done = self.stack.wait_done(prefix, count, timeout=240)
        return {"count": count, "seconds": (done or time.perf_counter()) - started,
                "finished": done is not None}

    def settle(self) -> None:
        """Let the simulator's status webhooks of the last replies arrive."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not requests.get(f"{self.stack.sim.base_url}/_sim/pending", timeout=10).json()[
                "pending"
            ]:
                break
            time.sleep(0.1)
        time.sleep(0.3)


def _cpu(meter: CpuMeter, messages: int) -> dict:
    """CPU seconds per process, ms per message of each, and the foreign share."""
    measured = meter.result()
    measured["ms_per_message"] = {
        name: 1000 * seconds / messages for name, seconds in measured["cpu_s"].items()
    } if messages else {}
    return measured


def _latency_summary(result: loadgen.RunResult) -> dict:
    latencies = result.latencies_ms()
    return {
        "n": len(latencies),
        "http": result.statuses(),
        "errors": result.errors[:5],
        "timed_out": result.timed_out,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "elapsed_s": result.elapsed,
    }


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "?"


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    import os

    import aiohttp
    import rasa
    import sanic

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rasa": rasa.__version__,
        "sanic": sanic.__version__,
        "aiohttp": aiohttp.__version__,
        "sqlalchemy": sa.__version__,
    }


def summarize(values: list[float]) -> dict:
    clean = [v for v in values if v is not None]
    if not clean:
        return {"min": None, "median": None, "max": None}
    return {"min": min(clean), "median": statistics.median(clean), "max": max(clean)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer messages (a smoke run)")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--memory-conversations", type=int, default=1000)
    parser.add_argument("--memory-steps", type=int, default=1)
    parser.add_argument("--experiments", default="",
                        help="what-if patches for rasa run (see bench/rasa_launcher.py); "
                        "implies --no-docs")
    parser.add_argument("--option", action="append", default=[],
                        help="extra WhatsApp credentials key=value (implies --no-docs)")
    args = parser.parse_args(argv)
    options = dict(option.split("=", 1) for option in args.option)
    if args.experiments or options:
        args.no_docs = True
    if args.quick:
        MESSAGES_PER_CLIENT.update({1: 10, 8: 4, 32: 3})

    began = time.monotonic()

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - began:6.1f}s] {message}", flush=True)

    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "make bench  (.venv/bin/python -m bench.run --rounds "
        f"{args.rounds}{' --quick' if args.quick else ''})",
        "machine": machine(),
        "messages_per_client": dict(MESSAGES_PER_CLIENT),
        "experiments": args.experiments,
        "whatsapp_options": options,
        "model_sha256": _sha256(REPO_ROOT / "models" / "whatsapp-bot.tar.gz"),
        "rounds": [],
    }
    log("starting simulator, Messenger stub, action server, rasa run, bare Sanic endpoint")
    env = {"BENCH_EXPERIMENTS": args.experiments} if args.experiments else {}
    stack = Stack.start(facebook=True, rasa_env=env, whatsapp_extra=options)
    try:
        bare_proc, bare_port = start_bare_sanic(stack.tmp)
        stack.extra.append(bare_proc)
        results["rss_mb_started"] = stack.rss_mb()
        bench = Bench(stack, log)
        bench.bare_pid = bare_proc.pid
        log("warm-up")
        bench.whatsapp(8, 4, "warm")
        bench.rest(8, 4, "warm")
        bench.facebook(8, 4, "warm")
        bench.settle()
        results["rss_mb_warm"] = stack.rss_mb()
        for round_no in range(1, args.rounds + 1):
            if time.monotonic() - began > TIME_BUDGET_S:
                log("time budget reached: skipping the remaining rounds")
                break
            order = CHANNELS[round_no - 1 :] + CHANNELS[: round_no - 1]
            round_result: dict = {"round": round_no, "order": list(order), "ack": {}}
            for channel in order:
                round_result["ack"][channel] = {}
                for clients in CONCURRENCY:
                    per_client = MESSAGES_PER_CLIENT[clients]
                    label = f"r{round_no}c{clients}"
                    measured = getattr(bench, channel)(clients, per_client, label)
                    round_result["ack"][channel][str(clients)] = measured
                    log(
                        f"round {round_no} {channel:8s} c={clients:2d}: ack p50 "
                        f"{measured['p50_ms']:7.1f} ms p99 {measured['p99_ms']:7.1f} ms, "
                        f"{measured.get('throughput') or 0:5.1f} msg/s, rasa CPU "
                        f"{measured['cpu']['ms_per_message'].get('rasa', 0):5.1f} ms/msg, foreign "
                        f"{measured['cpu']['foreign_share']:.0%}, http {measured['http']}"
                    )
                    bench.settle()
            requests.post(f"{stack.sim.base_url}/_sim/faults", json={"latency_ms": 100}, timeout=10)
            try:
                slow = bench.whatsapp(32, MESSAGES_PER_CLIENT[32], f"r{round_no}lat")
            finally:
                requests.delete(f"{stack.sim.base_url}/_sim/faults", timeout=10)
            round_result["whatsapp_latency100"] = slow
            log(f"round {round_no} whatsapp with 100 ms Graph latency: "
                f"{slow.get('throughput') or 0:5.1f} msg/s, ack p99 {slow['p99_ms']:.1f} ms")
            bench.settle()
            status = bench.statuses(f"r{round_no}", bare_port)
            round_result["statuses"] = status
            log(f"round {round_no} statuses: {status['whatsapp_rps']:.0f} req/s vs bare "
                f"{status['bare_rps']:.0f} req/s (rows moved {status['rows_moved_to_read']}"
                f"/{status['rows']})")
            results["rounds"].append(round_result)

        log("memory: RSS per 1,000 conversations")
        bench.settle()
        memory = {"rss_mb_before": stack.rss_mb(), "steps": []}
        for _ in range(args.memory_steps):
            step = bench.conversations(args.memory_conversations)
            bench.settle()
            step["rss_mb_after"] = stack.rss_mb()
            memory["steps"].append(step)
            log(f"memory: +{step['count']} conversations in {step['seconds']:.1f} s, "
                f"RSS {step['rss_mb_after']:.0f} MB")
        results["memory"] = memory
        results["inbox_totals"] = dict(stack.inbox_states("wamid.b"))
    finally:
        stack.stop()

    log("core costs per corpus payload")
    results["micro"] = [asdict(cost) for cost in micro.run()]
    results["summary"] = summarize_rounds(results)
    results["elapsed_s"] = time.monotonic() - began
    out_dir = REPO_ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = f"-{args.experiments}" if args.experiments else ""
    suffix += "".join(f"-{k}{v}" for k, v in options.items())
    (out_dir / f"bench-{stamp}{suffix}.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.no_docs:
        render_file(results, REPO_ROOT / "docs" / "benchmarks.md")
    log(f"done in {results['elapsed_s']:.0f} s; results: bench/results/bench-{stamp}{suffix}.json")
    return 0


def summarize_rounds(results: dict) -> dict:
    rounds = results["rounds"]
    summary: dict = {"ack": {}, "ratios": {}}
    for channel in CHANNELS:
        for clients in CONCURRENCY:
            key = f"{channel}/{clients}"
            cells = [r["ack"][channel][str(clients)] for r in rounds]
            summary["ack"][key] = {
                "p50_ms": summarize([c["p50_ms"] for c in cells]),
                "p99_ms": summarize([c["p99_ms"] for c in cells]),
                "throughput": summarize([c.get("throughput") for c in cells]),
            }

    def ratio(num, den):
        return num / den if num and den else None

    wa = [r["ack"]["whatsapp"]["32"].get("throughput") for r in rounds]
    rest = [r["ack"]["rest"]["32"].get("throughput") for r in rounds]
    fb = [r["ack"]["facebook"]["32"].get("throughput") for r in rounds]
    slow = [r["whatsapp_latency100"].get("throughput") for r in rounds]
    status = [r["statuses"]["whatsapp_rps"] for r in rounds]
    bare = [r["statuses"]["bare_rps"] for r in rounds]
    def ratios(numerators: list, denominators: list) -> dict:
        return summarize([ratio(a, b) for a, b in zip(numerators, denominators, strict=True)])

    summary["ratios"] = {
        "e2e_whatsapp_over_rest": ratios(wa, rest),
        "e2e_whatsapp_over_facebook": ratios(wa, fb),
        "latency100_over_nolatency": ratios(slow, wa),
        "status_over_bare": ratios(status, bare),
    }
    summary["throughput"] = {
        "whatsapp": summarize(wa), "rest": summarize(rest), "facebook": summarize(fb),
        "whatsapp_latency100": summarize(slow), "status_rps": summarize(status),
        "bare_rps": summarize(bare),
    }
    memory = results.get("memory")
    if memory and memory["steps"]:
        steps = memory["steps"]
        count = sum(step["count"] for step in steps)
        summary["memory"] = {
            "per_1000_mb": (steps[-1]["rss_mb_after"] - memory["rss_mb_before"]) / count * 1000
        }
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
