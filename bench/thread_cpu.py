"""CPU of ``rasa run`` per message, by thread and user/system, REST against WhatsApp
(diagnostics only; no docs written).

    .venv/bin/python -m bench.thread_cpu --rounds 3
    .venv/bin/python -m bench.thread_cpu --pin      # rasa run on CPU 0, the rest on CPU 1
    .venv/bin/python -m bench.thread_cpu --pin --with-metadata   # + REST with WhatsApp's metadata

Each round runs 32 clients through REST and through the WhatsApp channel's ingress
process (order rotated) on one stack and prints, per channel, msg/s and the CPU
milliseconds per message of every thread of ``rasa run`` (from
``/proc/<pid>/task/<tid>/stat``), split into user and system time, and the time each
waited runnable for a CPU (``schedstat``: preempted by other processes). ``--pin`` puts every
thread of ``rasa run`` on CPU 0 and every other process of the stack (ingress process,
simulator, action server, this load generator) on CPU 1, to see what preemption by the
harness costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from bench.cpu import TICKS
from bench.run import Bench
from bench.stack import Stack


def thread_times(pid: int) -> dict[str, tuple[float, float, float]]:
    """``{thread: (user ms, system ms, ms runnable but waiting for a CPU)}``; the wait is
    the run-queue delay of ``/proc/.../schedstat`` (time preempted or not yet scheduled).
    Python 3.10 names no OS thread, so threads are told apart by id (the main thread's
    is the pid)."""
    totals: dict[str, tuple[float, float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
            waited_ns = int((task / "schedstat").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        after = text.rsplit(")", 1)[1].split()
        name = "main thread" if int(task.name) == pid else f"thread {task.name}"
        totals[name] = (
            int(after[11]) / TICKS * 1000, int(after[12]) / TICKS * 1000, waited_ns / 1e6
        )
    return totals


def pin(stack: Stack) -> None:
    """``rasa run`` (all threads) on CPU 0; the ingress process, helpers and us on CPU 1."""
    for task in Path(f"/proc/{stack.node.pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {0})
    others = [stack.sim._process.pid, os.getpid()]
    if stack.actions is not None:
        others.append(stack.actions.pid)
    if stack.ingress_pid() is not None:
        others.append(stack.ingress_pid())
    for pid in others:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), {1})


def measure(bench: Bench, channel: str, pid: int, per_client: int) -> dict:
    bench.rest_metadata = channel == REST_WITH_METADATA
    before = thread_times(pid)
    result = getattr(bench, channel.split("+")[0])(32, per_client, "tcpu")
    after = thread_times(pid)
    messages = result["messages"]
    per_thread = {
        name: tuple(
            (after[name][i] - before.get(name, (0.0, 0.0, 0.0))[i]) / messages
            for i in range(3)
        )
        for name in after
    }
    return {"throughput": result["throughput"], "threads": per_thread}


REST_WITH_METADATA = "rest+whatsapp_metadata"
"""REST messages carrying the metadata the WhatsApp channel gives its messages."""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--status-sink", action="store_true",
                        help="the simulator's status webhooks go to a sink, not the channel")
    parser.add_argument("--with-metadata", action="store_true",
                        help=f"also measure {REST_WITH_METADATA}")
    parser.add_argument("--option", action="append", default=[],
                        help="extra WhatsApp credentials key=value")
    args = parser.parse_args()
    options = dict(option.split("=", 1) for option in args.option)
    channels = ["rest", "whatsapp_ingress"] + ([REST_WITH_METADATA] if args.with_metadata else [])
    results: dict[str, list[dict]] = {c: [] for c in channels}
    with Stack.start(
        ingress=True, whatsapp_extra=options, status_sink=args.status_sink
    ) as stack:
        bench = Bench(stack, print)
        if args.pin:
            pin(stack)
        for channel in channels[:2]:
            getattr(bench, channel)(8, 4, "warm")
        bench.settle()
        for round_ in range(args.rounds):
            order = channels[round_ % len(channels):] + channels[: round_ % len(channels)]
            for channel in order:
                results[channel].append(measure(bench, channel, stack.node.pid, args.per_client))
                bench.settle()
    for channel, rounds in results.items():
        print(f"== {channel}: msg/s "
              + " ".join(f"{r['throughput']:.1f}" for r in rounds))
        names = sorted({n for r in rounds for n in r["threads"]})
        for name in names:
            user, system, waited = (
                statistics.median(r["threads"].get(name, (0, 0, 0))[i] for r in rounds)
                for i in range(3)
            )
            if user + system >= 0.05:
                print(f"  {name:28s} user {user:6.2f}  sys {system:5.2f}  "
                      f"waiting for a CPU {waited:5.2f} ms/msg")
        total = [sum(u + s for u, s, _ in r["threads"].values()) for r in rounds]
        print(f"  total {statistics.median(total):.2f} ms/msg ({min(total):.2f}-{max(total):.2f})")
    ratios = [w["throughput"] / r["throughput"]
              for w, r in zip(results["whatsapp_ingress"], results["rest"], strict=True)]
    print("whatsapp_ingress / rest: " + " ".join(f"{x:.2f}" for x in ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
