"""``make bench``: the WhatsApp channel against Rasa's REST and Facebook channels, one run.

One ``rasa run`` (trained model, SQLite tracker store) serves the WhatsApp channel, Rasa's
``rest`` channel and Rasa's ``facebook`` channel; the simulator stands in for the Cloud API
(and sends sent/delivered/read statuses back, as Meta does); a stub stands in for the
Messenger Send API. Each round measures, channel order rotated:

1. ack latency (closed-loop clients, distinct contacts, 1 / 8 / 32 at once);
2. end-to-end throughput at 32 clients (WhatsApp: first POST -> last reply accepted by
   the simulator; REST: request -> response with the replies; Facebook: request ->
   response, which Rasa sends after the turn);
3. WhatsApp throughput with 100 ms of Graph API latency;
4. status-webhook throughput vs a bare Sanic HMAC endpoint.

The WhatsApp channel is measured twice when its ingress process is on (``whatsapp_ingress``,
the default unless ``--channels`` leaves it out): ``whatsapp_ingress`` posts webhooks to the
ingress port of that ``rasa run`` (the channel's ``ingress_port``, a child process of
``rasa run``); ``whatsapp`` (in-process, no ingress process) posts them to a second
``rasa run`` started without ``ingress_port`` (the README default; WhatsApp channel only,
same model, action server, simulator and credentials, its own SQLite tracker store and
status spool). A second process is needed because with an ingress process the channel also
hands its replies (Graph API sends, read receipts) to it: webhooks on the first
``rasa run``'s port would not measure the channel running entirely in ``rasa run``. Both
``rasa run`` processes stay up for the whole run (the one not measured is idle); the
simulator's webhooks (statuses) go to the port of the variant being measured, and CPU
"rasa" is the ``rasa run`` serving it. If the ingress process never answers its health
URL (30 s), that variant is skipped (``whatsapp`` still runs on the second ``rasa run``).

Then core costs per corpus payload (in this process) and RSS per 1,000 conversations (of
the first ``rasa run``, through its ingress process). Results:
``docs/benchmarks.md`` (rendered) and ``bench/results/bench-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import requests
import sqlalchemy as sa

from bench import loadgen, micro, payloads
from bench.cpu import CpuMeter
from bench.loadgen import percentile, run_closed_loop
from bench.procs import APP_SECRET, FB_SECRET, REPO_ROOT, start_bare_sanic
from bench.render import render_file
from bench.stack import RasaNode, Stack, text_messages, whatsapp_requests
from whatsapp_core.schema import outbox

CONCURRENCY = (1, 8, 32)
MESSAGES_PER_CLIENT = {1: 40, 8: 12, 32: 10}
CHANNELS = ("whatsapp_ingress", "whatsapp", "rest", "facebook")
WHATSAPP_VARIANTS = ("whatsapp_ingress", "whatsapp")
DOCS_CHANNELS = {"whatsapp", "rest", "facebook"}  # a run without one of them renders no docs
STATUS_WAMIDS_PER_CLIENT = 160  # x 32 clients x 2 statuses (delivered, read): ~1 s a run
BARE_REPEAT = 3
TIME_BUDGET_S = 18 * 60


def suffix_of(variant: str) -> str:
    """Key suffix of a WhatsApp variant in results (``""`` for the in-process channel)."""
    return "" if variant == "whatsapp" else "_ingress"


class Bench:
    def __init__(self, stack: Stack, log) -> None:
        self.stack = stack
        self.log = log
        self.port = stack.rasa_port
        self.run_id = 0
        self.bare_pid: int | None = None
        self.rest_metadata = False  # REST messages carry WhatsApp-sized metadata (what-if)
        self._webhooks_port = self.port  # where the simulator's webhooks go now

    def node_for(self, variant: str) -> RasaNode:
        """The ``rasa run`` serving ``variant``: the second one (no ingress process) for the
        in-process ``whatsapp`` variant when the stack has one, else the first one."""
        if variant == "whatsapp" and self.stack.in_process is not None:
            return self.stack.in_process
        return self.stack.node

    def whatsapp_port(self, variant: str) -> int:
        if variant == "whatsapp_ingress":
            if self.stack.ingress_port is None:
                raise RuntimeError("the ingress process is not running")
            return self.stack.ingress_port
        return self.node_for(variant).port

    def point_webhooks(self, port: int) -> None:
        """The simulator's webhooks (statuses) go to ``port`` from now on."""
        if port != self._webhooks_port:
            self.settle()
            self.stack.point_webhooks(port)
            self._webhooks_port = port

    def meter(self, node: RasaNode | None = None, *, bare: bool = False) -> CpuMeter:
        """CPU of ``node`` (default: the first ``rasa run``) as "rasa", the first one's
        ingress process as "ingress" (idle unless its variant is measured), the other
        ``rasa run`` (idle) as "other_rasa", and the helpers."""
        node = node or self.stack.node
        pids = {"rasa": node.pid, "simulator": self.stack.sim._process.pid}
        ingress_pid = self.stack.ingress_pid()
        if ingress_pid is not None:
            pids["ingress"] = ingress_pid
        for other in self.stack.nodes():
            if other is not node:
                pids["other_rasa"] = other.pid
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
    def whatsapp(
        self, clients: int, per_client: int, label: str, *, variant: str = "whatsapp"
    ) -> dict:
        """Webhooks to the port of ``variant``: the second ``rasa run`` (no ingress process)
        for ``"whatsapp"`` (the first one if the stack has no second), the first one's
        ingress port for ``"whatsapp_ingress"``; the simulator's status webhooks go there."""
        node = self.node_for(variant)
        port = self.whatsapp_port(variant)
        self.point_webhooks(port)
        prefix = self._prefix(label)
        contacts = [f"1555{self.run_id:03d}{i:04d}" for i in range(clients)]
        messages = text_messages(prefix, contacts, per_client)
        self.stack.register_with_simulator([m for c in messages for m in c])
        reqs = whatsapp_requests(messages)
        total = clients * per_client
        with self.meter(node) as meter:
            result = run_closed_loop(port, reqs, time_limit=120)
            done_at = node.wait_done(prefix, total, timeout=180)
        states = node.inbox_states(prefix)
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

    def whatsapp_ingress(self, clients: int, per_client: int, label: str) -> dict:
        return self.whatsapp(clients, per_client, label, variant="whatsapp_ingress")

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
    def prepare_status_rows(
        self, label: str, count: int, node: RasaNode | None = None
    ) -> list[tuple[str, str]]:
        """``count`` outbox rows in state ``sent`` (as if replies had just gone out), in the
        database of ``node`` (default: the first ``rasa run``)."""
        now = time.time()
        rows = [(f"wamid.st{label}_{i:05d}", f"1666{i % 1000:07d}") for i in range(count)]
        with (node or self.stack.node).engine().begin() as connection:
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

    def status_requests(
        self, label: str, clients: int, node: RasaNode | None = None
    ) -> tuple[list[list[bytes]], list[str]]:
        rows = self.prepare_status_rows(label, clients * STATUS_WAMIDS_PER_CLIENT, node)
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

    def statuses(
        self, label: str, bare_port: int | None, clients: int = 32, *, variant: str = "whatsapp"
    ) -> dict:
        """Status webhooks to the channel (``variant``'s port, rows in the database of the
        ``rasa run`` serving it), then, unless ``bare_port`` is None, the same bodies three
        times over to the bare endpoint."""
        node = self.node_for(variant)
        reqs, wamids = self.status_requests(label, clients, node)
        port = self.whatsapp_port(variant)

        def moved_to_read() -> int:
            return node.scalar(  # "_" escaped: label r1 must not count r1i's rows
                "SELECT count(*) FROM whatsapp_outbox WHERE wamid LIKE :p ESCAPE '\\' "
                "AND state = 'read'",
                p=f"wamid.st{label}\\_%",
            )

        with self.meter(node) as meter:
            started = time.perf_counter()
            result = run_closed_loop(port, reqs, time_limit=120)
            # Answered is not applied (statuses are spooled, then written in batches): the
            # run ends when every row reached "read", and that time is reported too.
            deadline = time.monotonic() + 60
            while (moved := moved_to_read()) < len(wamids) and time.monotonic() < deadline:
                time.sleep(0.01)
            applied_s = time.perf_counter() - started
        out = {
            "variant": variant,
            "cpu": _cpu(meter, len(result.samples)),
            "requests": len(result.samples),
            "statuses_http": result.statuses(),
            "rows_moved_to_read": moved,
            "rows": len(wamids),
            "whatsapp_rps": result.ok / result.elapsed,
            "whatsapp_applied_rps": result.ok / applied_s,
            "whatsapp_p50_ms": percentile(result.latencies_ms(), 50),
            "whatsapp_p99_ms": percentile(result.latencies_ms(), 99),
        }
        if bare_port is not None:
            out.update(self.bare_statuses(reqs, bare_port))
        return out

    def bare_statuses(self, reqs: list[list[bytes]], bare_port: int) -> dict:
        with self.meter(bare=True) as bare_meter:
            bare = run_closed_loop(bare_port, [r * BARE_REPEAT for r in reqs], time_limit=120)
        return {
            "bare_cpu": _cpu(bare_meter, len(bare.samples)),
            "bare_requests": len(bare.samples),
            "bare_statuses_http": bare.statuses(),
            "bare_rps": bare.ok / bare.elapsed,
            "bare_p99_ms": percentile(bare.latencies_ms(), 99),
        }

    # ------------------------------------------------------------ memory
    def conversations(self, count: int, clients: int = 32, *, variant: str = "whatsapp") -> dict:
        node = self.node_for(variant)
        port = self.whatsapp_port(variant)
        self.point_webhooks(port)
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
        run_closed_loop(port, reqs, time_limit=120)
        done = node.wait_done(prefix, count, timeout=240)
        return {"count": count, "seconds": (done or time.perf_counter()) - started,
                "finished": done is not None, "variant": variant}

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


def parse_channels(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in CHANNELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown channel(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(CHANNELS)}"
        )
    return tuple(n for n in CHANNELS if n in names)  # the canonical order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer messages (a smoke run)")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=None,
                        help="render to this file instead of docs/benchmarks.md (also for runs "
                        "that would not render: --channels subsets, --experiments, --option)")
    parser.add_argument("--channels", type=parse_channels, default=CHANNELS,
                        help=f"comma-separated subset of {','.join(CHANNELS)} (default: all; "
                        "whatsapp_ingress is skipped when the ingress process does not answer). "
                        "Leaving out whatsapp, rest or facebook implies --no-docs")
    parser.add_argument("--memory-conversations", type=int, default=1000)
    parser.add_argument("--memory-steps", type=int, default=1)
    parser.add_argument("--experiments", default="",
                        help="what-if patches for rasa run (see bench/rasa_launcher.py); "
                        "implies --no-docs")
    parser.add_argument("--option", action="append", default=[],
                        help="extra WhatsApp credentials key=value (implies --no-docs)")
    args = parser.parse_args(argv)
    options = dict(option.split("=", 1) for option in args.option)
    if args.experiments or options or not DOCS_CHANNELS <= set(args.channels):
        args.no_docs = True
    docs_path = args.docs or REPO_ROOT / "docs" / "benchmarks.md"
    if args.docs:
        args.no_docs = False
    if args.quick:
        MESSAGES_PER_CLIENT.update({1: 10, 8: 4, 32: 3})

    began = time.monotonic()

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - began:6.1f}s] {message}", flush=True)

    channels = tuple(args.channels)
    command = f"--rounds {args.rounds}{' --quick' if args.quick else ''}"
    if channels != CHANNELS:
        command += f" --channels {','.join(channels)}"
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": f"make bench  (.venv/bin/python -m bench.run {command})"
        if channels == CHANNELS else f".venv/bin/python -m bench.run {command}",
        "machine": machine(),
        "messages_per_client": dict(MESSAGES_PER_CLIENT),
        "experiments": args.experiments,
        "whatsapp_options": options,
        "model_sha256": _sha256(REPO_ROOT / "models" / "whatsapp-bot.tar.gz"),
        "channels_requested": list(channels),
        "rounds": [],
    }
    want_ingress = "whatsapp_ingress" in channels
    # with an ingress process the channel hands it its replies too: the in-process variant
    # gets its own rasa run without ingress_port
    second_rasa = want_ingress and "whatsapp" in channels
    log("starting simulator, Messenger stub, action server, rasa run"
        + (" (with its ingress process)" if want_ingress else "")
        + (", a second rasa run (WhatsApp only, no ingress process)" if second_rasa else "")
        + ", bare Sanic endpoint")
    env = {"BENCH_EXPERIMENTS": args.experiments} if args.experiments else {}
    stack = Stack.start(
        facebook="facebook" in channels, rest="rest" in channels, rasa_env=env,
        whatsapp_extra=options, ingress=want_ingress, in_process=second_rasa, log=log,
    )
    try:
        if want_ingress and stack.ingress_port is None:
            log("SKIPPED: whatsapp_ingress (the ingress process never answered its health URL; "
                f"see {stack.tmp / 'rasa.log'})")
            channels = tuple(c for c in channels if c != "whatsapp_ingress")
        if not channels:
            raise SystemExit("bench: no channel left to measure")
        variants = [v for v in WHATSAPP_VARIANTS if v in channels]
        results["channels"] = list(channels)
        results["ingress"] = {"requested": want_ingress, "port": stack.ingress_port,
                              "pid": stack.ingress_pid()}
        second = stack.in_process
        results["in_process_rasa"] = (
            {"port": second.port, "pid": second.pid, "rss_mb_started": second.rss_mb()}
            if second is not None else None
        )
        bare_proc, bare_port = start_bare_sanic(stack.tmp)
        stack.extra.append(bare_proc)
        results["rss_mb_started"] = stack.rss_mb()
        results["ingress_rss_mb_started"] = stack.ingress_rss_mb()
        bench = Bench(stack, log)
        bench.bare_pid = bare_proc.pid
        log("warm-up")
        for channel in channels:
            getattr(bench, channel)(8, 4, "warm")
            bench.settle()
        results["rss_mb_warm"] = stack.rss_mb()
        results["ingress_rss_mb_warm"] = stack.ingress_rss_mb()
        if second is not None:
            results["in_process_rasa"]["rss_mb_warm"] = second.rss_mb()
        for round_no in range(1, args.rounds + 1):
            if time.monotonic() - began > TIME_BUDGET_S:
                log("time budget reached: skipping the remaining rounds")
                break
            shift = (round_no - 1) % len(channels)
            order = channels[shift:] + channels[:shift]
            round_result: dict = {"round": round_no, "order": list(order), "ack": {}}
            for channel in order:
                round_result["ack"][channel] = {}
                for clients in CONCURRENCY:
                    per_client = MESSAGES_PER_CLIENT[clients]
                    label = f"r{round_no}c{clients}"
                    measured = getattr(bench, channel)(clients, per_client, label)
                    round_result["ack"][channel][str(clients)] = measured
                    per_message = measured["cpu"]["ms_per_message"]
                    ingress_cpu = (f" + ingress {per_message['ingress']:4.1f}"
                                   if "ingress" in per_message else "")
                    log(
                        f"round {round_no} {channel:16s} c={clients:2d}: ack p50 "
                        f"{measured['p50_ms']:7.1f} ms p99 {measured['p99_ms']:7.1f} ms, "
                        f"{measured.get('throughput') or 0:5.1f} msg/s, rasa CPU "
                        f"{per_message.get('rasa', 0):5.1f}{ingress_cpu} ms/msg, foreign "
                        f"{measured['cpu']['foreign_share']:.0%}, http {measured['http']}"
                    )
                    bench.settle()
            round_variants = [c for c in order if c in variants]
            for variant in round_variants:
                requests.post(f"{stack.sim.base_url}/_sim/faults", json={"latency_ms": 100},
                              timeout=10)
                try:
                    slow = bench.whatsapp(32, MESSAGES_PER_CLIENT[32], f"r{round_no}lat",
                                          variant=variant)
                finally:
                    requests.delete(f"{stack.sim.base_url}/_sim/faults", timeout=10)
                round_result[f"{variant}_latency100"] = slow
                log(f"round {round_no} {variant} with 100 ms Graph latency: "
                    f"{slow.get('throughput') or 0:5.1f} msg/s, ack p99 {slow['p99_ms']:.1f} ms")
                bench.settle()
            round_result["statuses"] = {}
            for index, variant in enumerate(round_variants):
                status = bench.statuses(f"r{round_no}{'i' * (variant != 'whatsapp')}",
                                        bare_port if index == 0 else None, variant=variant)
                key = f"statuses{suffix_of(variant)}"
                round_result[key] = {**round_result.get(key, {}), **status}
                log(f"round {round_no} statuses {variant}: {status['whatsapp_rps']:.0f} req/s"
                    + (f" vs bare {status['bare_rps']:.0f} req/s" if "bare_rps" in status else "")
                    + f" (rows moved {status['rows_moved_to_read']}/{status['rows']})")
            if "bare_rps" not in round_result["statuses"]:  # keep the bare figures here
                bare = next(round_result[f"statuses{suffix_of(v)}"] for v in round_variants)
                round_result["statuses"].update(
                    {k: v for k, v in bare.items() if k.startswith("bare")}
                )
            results["rounds"].append(round_result)

        if variants:
            variant = variants[0]  # the ingress variant (first rasa run) when it runs
            node = bench.node_for(variant)
            log(f"memory: RSS per 1,000 conversations (through {variant}, rasa run pid "
                f"{node.pid})")
            bench.settle()
            memory = {"rss_mb_before": node.rss_mb(), "variant": variant,
                      "ingress_rss_mb_before": stack.ingress_rss_mb(), "steps": []}
            for _ in range(args.memory_steps):
                step = bench.conversations(args.memory_conversations, variant=variant)
                bench.settle()
                step["rss_mb_after"] = node.rss_mb()
                step["ingress_rss_mb_after"] = stack.ingress_rss_mb()
                memory["steps"].append(step)
                log(f"memory: +{step['count']} conversations in {step['seconds']:.1f} s, "
                    f"RSS {step['rss_mb_after']:.0f} MB"
                    + (f", ingress {step['ingress_rss_mb_after']:.0f} MB"
                       if step["ingress_rss_mb_after"] is not None else ""))
            results["memory"] = memory
        if second is not None:
            results["in_process_rasa"]["rss_mb_end"] = second.rss_mb()
        results["inbox_totals"] = dict(sum(
            (node.inbox_states("wamid.b") for node in stack.nodes()), Counter()
        ))
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
    if set(args.channels) != set(CHANNELS):
        suffix += "-" + "+".join(args.channels)
    (out_dir / f"bench-{stamp}{suffix}.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.no_docs:
        render_file(results, docs_path)
        log(f"rendered {docs_path}")
    log(f"done in {results['elapsed_s']:.0f} s; results: bench/results/bench-{stamp}{suffix}.json")
    return 0


def summarize_rounds(results: dict) -> dict:
    rounds = results["rounds"]
    channels = [c for c in CHANNELS if rounds and c in rounds[0]["ack"]]
    summary: dict = {"ack": {}, "ratios": {}, "throughput": {}}
    for channel in channels:
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

    def per_round(path: str, field: str) -> list:
        """``field`` of ``path`` (``ack/<channel>/32`` or a round key) in every round."""
        values = []
        for r in rounds:
            cell = r
            for part in path.split("/"):
                cell = (cell or {}).get(part)
            values.append((cell or {}).get(field))
        return values

    def ratios(numerators: list, denominators: list) -> dict:
        return summarize([ratio(a, b) for a, b in zip(numerators, denominators, strict=True)])

    e2e = {c: per_round(f"ack/{c}/32", "throughput") for c in channels}
    bare = per_round("statuses", "bare_rps")
    summary["throughput"]["bare_rps"] = summarize(bare)
    for channel in channels:
        summary["throughput"][channel] = summarize(e2e[channel])
    for variant in (v for v in WHATSAPP_VARIANTS if v in channels):
        sfx = suffix_of(variant)
        slow = per_round(f"{variant}_latency100", "throughput")
        status = per_round(f"statuses{sfx}", "whatsapp_rps")
        applied = per_round(f"statuses{sfx}", "whatsapp_applied_rps")
        for other in ("rest", "facebook"):
            if other in channels:
                summary["ratios"][f"e2e_{variant}_over_{other}"] = ratios(e2e[variant], e2e[other])
        summary["ratios"][f"latency100{sfx}_over_nolatency"] = ratios(slow, e2e[variant])
        summary["ratios"][f"status{sfx}_over_bare"] = ratios(status, bare)
        summary["ratios"][f"status_applied{sfx}_over_bare"] = ratios(applied, bare)
        summary["throughput"][f"{variant}_latency100"] = summarize(slow)
        summary["throughput"][f"status{sfx}_rps"] = summarize(status)
    if "whatsapp" in channels and "whatsapp_ingress" in channels:
        summary["ratios"]["e2e_whatsapp_ingress_over_whatsapp"] = ratios(
            e2e["whatsapp_ingress"], e2e["whatsapp"]
        )
    memory = results.get("memory")
    if memory and memory["steps"]:
        steps = memory["steps"]
        count = sum(step["count"] for step in steps)
        summary["memory"] = {
            "per_1000_mb": (steps[-1]["rss_mb_after"] - memory["rss_mb_before"]) / count * 1000
        }
        if memory.get("ingress_rss_mb_before") is not None and steps[-1].get(
            "ingress_rss_mb_after"
        ) is not None:
            summary["memory"]["ingress_per_1000_mb"] = (
                steps[-1]["ingress_rss_mb_after"] - memory["ingress_rss_mb_before"]
            ) / count * 1000
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
