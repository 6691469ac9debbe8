"""Run the ``rasa`` command line, optionally pointing Messenger sends at a local stub.

Rasa's Facebook channel sends with the synchronous ``fbmessenger`` client to
``https://graph.facebook.com``; the benchmarks have no network, so when
``BENCH_FB_GRAPH_URL`` is set every ``MessengerClient`` posts there instead (the
stub in ``bench/graph_stub.py``). The channel's code and its blocking calls are
otherwise unchanged: each of its sends still blocks the event loop for a loopback
round trip, as it would for a real (much slower) Graph API call.

``BENCH_EXPERIMENTS=pool,...`` applies what-if patches (see ``EXPERIMENTS``) to measure a
suggested fix before anyone changes the channel; ``make bench`` never sets it.
"""

from __future__ import annotations

import os
import sys


def _patch_messenger(graph_url: str) -> None:
    import fbmessenger

    original = fbmessenger.MessengerClient.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        self.graph_url = graph_url

    fbmessenger.MessengerClient.__init__ = init


def _experiment_pool() -> None:
    """What-if (never used by ``make bench`` unless asked): a pooled SQLite connection for the
    channel's store instead of SQLAlchemy 1.4's default NullPool for file databases."""
    import sqlalchemy as sa

    import whatsapp_core.store as store

    def create_engine(url: str):  # type: ignore[no-untyped-def]
        if not url.startswith("sqlite"):
            return sa.create_engine(url, future=True, pool_pre_ping=True)
        engine = sa.create_engine(
            url,
            future=True,
            poolclass=sa.pool.QueuePool,
            pool_size=2,
            connect_args={"check_same_thread": False},
        )
        sa.event.listen(engine, "connect", store._sqlite_pragmas(10_000, True))
        return engine

    store.create_engine = create_engine


def _experiment_gcstats() -> None:
    """Diagnostics: time spent in the garbage collector, per generation, written every
    5 s to ``$BENCH_GC_STATS`` (JSON: collections and seconds per generation)."""
    import gc
    import json
    import threading
    import time

    path = os.environ.get("BENCH_GC_STATS", "gc-stats.json")
    stats = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
    started: list[float] = []

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            generation = info["generation"]
            stats["collections"][generation] += 1
            stats["seconds"][generation] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)

    def dump() -> None:
        while True:
            time.sleep(5)
            with open(path, "w") as handle:
                json.dump(stats, handle)

    threading.Thread(target=dump, daemon=True).start()


EXPERIMENTS = {"pool": _experiment_pool, "gcstats": _experiment_gcstats}


def main() -> None:
    graph_url = os.environ.get("BENCH_FB_GRAPH_URL")
    if graph_url:
        _patch_messenger(graph_url)
    for name in filter(None, os.environ.get("BENCH_EXPERIMENTS", "").split(",")):
        EXPERIMENTS[name]()
        print(f"rasa_launcher: experiment '{name}' applied", file=sys.stderr)
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()
