"""Profile ``rasa run`` with py-spy while one channel is under load (diagnostics only).

    .venv/bin/python -m bench.profile_run whatsapp --clients 32 --per-client 15
    .venv/bin/python -m bench.profile_run rest
    .venv/bin/python -m bench.profile_run whatsapp_ingress        # through the ingress port
    .venv/bin/python -m bench.profile_run statuses_ingress --spy-ingress --rate 500

Writes collapsed stacks to bench/results/profile-<channel>.txt and prints the functions
with the largest inclusive share of samples, per thread (py-spy ``--threads``);
``--spy-ingress`` profiles the ingress process instead of ``rasa run``; ``--wall`` samples
wall time (idle and waiting included) instead of GIL-holding samples.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

from bench.procs import BIN, REPO_ROOT, start_bare_sanic
from bench.run import Bench
from bench.stack import Stack

INTERESTING = (
    "whatsapp_core/", "connectors/", "rasa/core/processor.py:handle_message",
    "rasa/core/tracker_store.py", "sqlalchemy/engine/base.py:commit", "sqlite3",
    "rasa/nlu/", "rasa/core/policies/", "sanic/http.py", "aiohttp/client.py",
    "rasa/core/lock_store.py", "rasa/core/channels/rest.py", "json/",
)


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func file.py`` (package dir kept for context)."""
    match = re.match(r"(.*?) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    parts = path.split("/")
    return f"{func} {'/'.join(parts[-2:])}"


CATEGORIES = (
    # (name, substring of a frame); the first category listed that matches wins
    ("store thread (whatsapp_core.store)", "whatsapp-store"),
    ("custom action call (RemoteAction.run)", "run (rasa/core/actions/action.py:7"),
    ("tracker store save", "save_tracker (rasa/core/processor.py"),
    ("tracker retrieve + session", "fetch_tracker_and_update_session (rasa/core/processor"),
    ("NLU (parse_message)", "_parse_message_with_graph (rasa/core/processor"),
    ("policy prediction", "_predict_next_with_tracker (rasa/core/processor"),
    ("bot turn, other", "handle_message (rasa/core/processor.py"),
    ("webhook receive (channel + receiver)", "receive (connectors/whatsapp_connector.py"),
    ("store ingress thread", "whatsapp-ingress"),
    ("outbound send (sender + Graph client)", "_deliver (whatsapp_core/sender.py"),
    ("turn worker, other (menu, mark_done)", "_run_turn (whatsapp_core/receiver.py"),
    ("REST channel request, other", "receive (rasa/core/channels/rest.py"),
    ("Sanic HTTP handling", "sanic/http.py"),
)


def categorize(path: Path) -> str:
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for name, needle in CATEGORIES:
            if needle in stack:
                counts[name] += int(count)
                break
        else:
            counts["other (event loop, asyncio, ...)"] += int(count)
    return "\n".join(f"  {n / total:6.1%}  {name}" for name, n in counts.most_common())


def summarize(path: Path, top: int = 40) -> str:
    inclusive: collections.Counter = collections.Counter()
    leaf: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        seen = set()
        for frame in frames[1:]:
            name = _frame_name(frame)
            if name not in seen:
                seen.add(name)
                inclusive[name] += n
        leaf[_frame_name(frames[-1])] += n
    lines = [f"total samples {total}"]
    lines += [f"  thread {name[:70]:70s} {n / total:6.1%}" for name, n in threads.most_common(8)]
    lines.append("inclusive (GIL-holding samples):")
    lines += [f"  {n / total:6.1%}  {name[:110]}" for name, n in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {n / total:6.1%}  {name[:110]}" for name, n in leaf.most_common(25)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "channel",
        choices=["whatsapp", "whatsapp_ingress", "rest", "facebook", "statuses",
                 "statuses_ingress"],
    )
    parser.add_argument("--spy-ingress", action="store_true",
                        help="profile the ingress process instead of rasa run")
    parser.add_argument("--wall", action="store_true",
                        help="sample wall time, idle and waiting included (where a thread "
                        "waits), instead of GIL-holding samples")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=15)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--experiments", default="", help="e.g. pool (see rasa_launcher.py)")
    parser.add_argument("--option", action="append", default=[],
                        help="extra WhatsApp credentials key=value, e.g. max_concurrent_turns=8")
    args = parser.parse_args()
    out_dir = REPO_ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    suffix = f"-{args.experiments}" if args.experiments else ""
    out = out_dir / f"profile-{args.channel}{suffix}.txt"
    env = {"BENCH_EXPERIMENTS": args.experiments} if args.experiments else {}
    options = dict(option.split("=", 1) for option in args.option)
    ingress = args.channel.endswith("_ingress")
    if args.spy_ingress:
        out = out.with_name(out.stem + "-ingress-process.txt")
    if args.wall:
        out = out.with_name(out.stem + "-wall.txt")
    with Stack.start(
        facebook=args.channel == "facebook", rasa_env=env, whatsapp_extra=options,
        ingress=ingress,
    ) as stack:
        bench = Bench(stack, print)
        variant = "whatsapp_ingress" if ingress else "whatsapp"
        if args.channel.startswith("statuses"):
            bare_proc, bare_port = start_bare_sanic(stack.tmp)
            stack.extra.append(bare_proc)
            bench.whatsapp(8, 4, "warm", variant=variant)
        else:
            getattr(bench, args.channel)(8, 4, "warm")
        bench.settle()
        pid = stack.node.ingress_pid() if args.spy_ingress else stack.rasa.pid
        spy = subprocess.Popen(
            [str(BIN / "py-spy"), "record", "--pid", str(pid), "--format", "raw",
             "--threads", "--idle" if args.wall else "--gil", "--rate", str(args.rate),
             "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        time.sleep(1.0)
        started = time.perf_counter()
        if args.channel.startswith("statuses"):
            result = bench.statuses("prof", bare_port, variant=variant)
            print(f"statuses: {result['whatsapp_rps']:.0f} req/s (bare {result['bare_rps']:.0f}) "
                  f"in {time.perf_counter() - started:.1f} s")
        else:
            result = getattr(bench, args.channel)(args.clients, args.per_client, "prof")
            print(f"{args.channel}: {result.get('throughput'):.1f} msg/s, ack p50 "
                  f"{result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} ms in "
                  f"{time.perf_counter() - started:.1f} s")
        spy.send_signal(2)
        spy.wait(timeout=30)
    print(summarize(out))
    print("by category (first match):")
    print(categorize(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
