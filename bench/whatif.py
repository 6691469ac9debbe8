"""What-if measurements: the WhatsApp channel vs REST under variants of configuration and
of suggested fixes (applied as patches by bench/rasa_launcher.py; the channel's code is not
changed). Diagnostics for the maintainers, not part of ``make bench``.

    .venv/bin/python -m bench.whatif                       # all variants, 2 rounds each
    .venv/bin/python -m bench.whatif baseline pool --rounds 3

Each variant starts its own stack (simulator, action server, rasa run with the WhatsApp
and REST channels), warms up, then alternates WhatsApp and REST runs at 32 clients.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.procs import REPO_ROOT
from bench.run import Bench
from bench.stack import Stack

VARIANTS: dict[str, dict] = {
    "baseline": {},
    "statuses-to-sink": {"status_sink": True},
    "no-mark-as-read": {"options": {"mark_as_read": "false"}},
    "pool": {"experiments": "pool"},
    "pool+turns8": {"experiments": "pool", "options": {"max_concurrent_turns": "8"}},
    "turns8": {"options": {"max_concurrent_turns": "8"}},
    "rest-with-whatsapp-metadata": {"rest_metadata": True},
    "pool+sink+noread+turns8": {
        "experiments": "pool", "status_sink": True,
        "options": {"mark_as_read": "false", "max_concurrent_turns": "8"},
    },
}


def run_variant(name: str, rounds: int, per_client: int) -> dict:
    spec = VARIANTS[name]
    env = {"BENCH_EXPERIMENTS": spec["experiments"]} if spec.get("experiments") else {}
    with Stack.start(
        rasa_env=env, whatsapp_extra=spec.get("options", {}),
        status_sink=spec.get("status_sink", False),
    ) as stack:
        bench = Bench(stack, print)
        bench.rest_metadata = spec.get("rest_metadata", False)
        bench.whatsapp(8, 4, "warm")
        bench.rest(8, 4, "warm")
        bench.settle()
        rows = []
        for round_no in range(rounds):
            order = ("whatsapp", "rest") if round_no % 2 == 0 else ("rest", "whatsapp")
            row = {}
            for channel in order:
                row[channel] = getattr(bench, channel)(32, per_client, f"w{round_no}")
                bench.settle()
            rows.append(row)
            wa, rest = row["whatsapp"], row["rest"]
            print(
                f"{name} round {round_no + 1}: whatsapp {wa['throughput'] or 0:5.1f} msg/s "
                f"(ack p50 {wa['p50_ms']:.1f} p99 {wa['p99_ms']:.1f} ms, rasa CPU "
                f"{wa['cpu']['ms_per_message']['rasa']:.1f} ms/msg) | rest "
                f"{rest['throughput']:5.1f} msg/s (rasa CPU "
                f"{rest['cpu']['ms_per_message']['rasa']:.1f} ms/msg) | foreign "
                f"{wa['cpu']['foreign_share']:.0%}/{rest['cpu']['foreign_share']:.0%}",
                flush=True,
            )
    def med(values):
        return statistics.median(values)

    return {
        "variant": name,
        "spec": spec,
        "rounds": rows,
        "ratio_median": med([r["whatsapp"]["throughput"] / r["rest"]["throughput"] for r in rows]),
        "whatsapp_msg_s": med([r["whatsapp"]["throughput"] for r in rows]),
        "rest_msg_s": med([r["rest"]["throughput"] for r in rows]),
        "whatsapp_ack_p99_ms": med([r["whatsapp"]["p99_ms"] for r in rows]),
        "whatsapp_ack_p50_ms": med([r["whatsapp"]["p50_ms"] for r in rows]),
        "whatsapp_rasa_cpu_ms": med(
            [r["whatsapp"]["cpu"]["ms_per_message"]["rasa"] for r in rows]
        ),
        "rest_rasa_cpu_ms": med([r["rest"]["cpu"]["ms_per_message"]["rasa"] for r in rows]),
        "foreign_share_max": max(
            max(r["whatsapp"]["cpu"]["foreign_share"], r["rest"]["cpu"]["foreign_share"])
            for r in rows
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per-client", type=int, default=10)
    args = parser.parse_args()
    results = [run_variant(name, args.rounds, args.per_client) for name in args.variants]
    out = REPO_ROOT / "bench" / "results" / f"whatif-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\n{'variant':26s} {'WA msg/s':>8s} {'REST':>6s} {'ratio':>6s} {'ack p50':>8s} "
          f"{'ack p99':>8s} {'WA CPU':>7s} {'REST CPU':>8s} {'foreign':>7s}")
    for r in results:
        print(f"{r['variant']:26s} {r['whatsapp_msg_s']:8.1f} {r['rest_msg_s']:6.1f} "
              f"{r['ratio_median']:6.2f} {r['whatsapp_ack_p50_ms']:8.1f} "
              f"{r['whatsapp_ack_p99_ms']:8.1f} {r['whatsapp_rasa_cpu_ms']:7.1f} "
              f"{r['rest_rasa_cpu_ms']:8.1f} {r['foreign_share_max']:7.0%}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
