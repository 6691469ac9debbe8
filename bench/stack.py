"""The running stack of a benchmark or reliability run, and helpers to drive and inspect it.

``Stack`` starts the simulator (statuses delivered to the bot), the action server, one
``rasa run`` with the WhatsApp channel (plus Rasa's ``rest`` and ``facebook`` channels
when asked) on a SQLite tracker store in a temporary directory. With ``ingress=True`` the
channel also gets an ``ingress_port``: its ingress process (a child of ``rasa run``) serves
the same webhook routes there; :meth:`Stack.point_webhooks` chooses which port the
simulator's webhooks (statuses) go to.

With ``in_process=True`` a second ``rasa run`` (:attr:`Stack.in_process`) serves the
WhatsApp channel only, without ``ingress_port`` (the README default): same model, action
server, simulator and credentials, its own SQLite tracker store and status spool in
``<tmp>/in-process``. With an ingress process the channel also hands its replies (Graph
API sends, read receipts) to it, so the first ``rasa run``'s port cannot stand for the
channel running entirely in ``rasa run``.

Each ``rasa run`` is a :class:`RasaNode` (process, configuration, database queries);
the ``Stack`` methods of the same names act on the first one (:attr:`Stack.node`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests
import sqlalchemy as sa

from bench import payloads
from bench.procs import (
    APP_SECRET,
    INGRESS_MODULE,
    Proc,
    RasaConfig,
    find_descendant,
    free_port,
    rss_mb,
    start_actions,
    start_fb_stub,
    start_rasa,
    start_simulator,
    wait_ingress,
)
from simulator.process import SimulatorProcess
from whatsapp_core.store_location import CHANNEL_SQLITE_FILE

REGISTER_BATCH = 400


@dataclass
class RasaNode:
    """One ``rasa run``: its process, its configuration and its SQLite database."""

    config: RasaConfig
    proc: Proc
    ingress_port: int | None = None  # set once the ingress process answered its health URL
    _ingress_pid: int | None = None
    _engine: sa.engine.Engine | None = None

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def pid(self) -> int:
        return self.proc.pid

    # ------------------------------------------------------------- lifecycle
    def wait_ingress(self, log) -> None:
        port = self.config.ingress_port
        assert port
        self._ingress_pid = None
        if wait_ingress(port, self.proc, timeout=30):
            self.ingress_port = port
            log(f"ingress process answers on port {port} (pid {self.ingress_pid()})")
        else:
            self.ingress_port = None
            log(f"ingress process: no 200 from http://127.0.0.1:{port}/webhooks/whatsapp/ "
                "within 30 s of rasa run being ready (is `ingress_port` implemented?): "
                "the ingress variant is skipped")

    def restart(self, log=print) -> None:
        """Start ``rasa run`` again with the same configuration (after a stop or kill)."""
        self.proc.stop()
        self.proc = start_rasa(self.config)
        if self.config.ingress_port:
            self.wait_ingress(log)

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self.proc.stop()

    # ------------------------------------------------------------- processes
    def ingress_pid(self) -> int | None:
        """Pid of the ingress process: the descendant of ``rasa run`` whose command line
        names ``connectors.whatsapp_ingress`` (looked up again if it went away)."""
        if self.ingress_port is None:
            return None
        if self._ingress_pid is None or not Path(f"/proc/{self._ingress_pid}").exists():
            self._ingress_pid = find_descendant(self.proc.pid, INGRESS_MODULE)
        return self._ingress_pid

    def rss_mb(self) -> float:
        return self.proc.rss_mb()

    def ingress_rss_mb(self) -> float | None:
        pid = self.ingress_pid()
        if pid is None:
            return None
        try:
            return rss_mb(pid)
        except OSError:
            return None

    # ------------------------------------------------------------- database
    @property
    def db_url(self) -> str:
        """The channel's database (its inbox, outbox and statuses)."""
        return f"sqlite:///{self.config.store_path}"

    def engine(self) -> sa.engine.Engine:
        if self._engine is None:
            # one kept connection (SQLAlchemy 1.4 would open and close one per query on a
            # SQLite file): the completion poll runs 40 times a second during a run
            self._engine = sa.create_engine(
                self.db_url, future=True, poolclass=sa.pool.QueuePool, pool_size=1,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
        return self._engine

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine().connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list:
        with self.engine().connect() as connection:
            return list(connection.execute(sa.text(sql), params).fetchall())

    def tracker_rows(self, sql: str, **params: object) -> list:
        """Rows from Rasa's tracker store (its ``events`` table), a file of its own."""
        engine = sa.create_engine(f"sqlite:///{self.config.tracker_path}", future=True)
        try:
            with engine.connect() as connection:
                return list(connection.execute(sa.text(sql), params).fetchall())
        finally:
            engine.dispose()

    def inbox_states(self, prefix: str) -> Counter:
        rows = self.rows(
            "SELECT state, count(*) FROM whatsapp_inbox WHERE message_id LIKE :p GROUP BY state",
            p=prefix + "%",
        )
        return Counter({state: n for state, n in rows})

    def outbox_queued(self) -> int:
        return int(self.scalar("SELECT count(*) FROM whatsapp_outbox WHERE state = 'queued'"))

    def inbox_unfinished(self) -> int:
        """Inbox rows (any prefix) whose turn has not run yet."""
        return int(self.scalar("SELECT count(*) FROM whatsapp_inbox WHERE state = 'accepted'"))

    def user_turns(self, prefix: str) -> Counter:
        """UserUttered events per message id starting with ``prefix`` (Rasa's events table)."""
        counts: Counter = Counter()
        for (data,) in self.tracker_rows("SELECT data FROM events WHERE type_name = 'user'"):
            message_id = json.loads(data).get("message_id") or ""
            if message_id.startswith(prefix):
                counts[message_id] += 1
        return counts

    def wait_done(
        self, prefix: str, expected: int, *, timeout: float = 120.0, poll: float = 0.025
    ) -> float | None:
        """Wait until ``expected`` inbox rows with ``prefix`` are done and no reply is queued;
        return the ``time.perf_counter()`` at which that was first seen, None on timeout.

        Polls with two indexed counts (rows still ``accepted``, replies still ``queued``),
        and counts the ``prefix`` rows only once both are zero: scanning the inbox for the
        prefix 40 times a second cost 1-2 ms of CPU per message on the machine's other
        core, a load the REST measurement does not have."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.inbox_unfinished() == 0 and self.outbox_queued() == 0:
                seen = time.perf_counter()
                states = self.inbox_states(prefix)
                if states.get("done", 0) + states.get("failed", 0) >= expected:
                    return seen
            time.sleep(poll)
        return None

    def wait_quiet(
        self, prefix: str, expected: int, *, quiet_s: float = 8.0, timeout: float = 240.0
    ) -> dict:
        """Wait until every inbox row with ``prefix`` is ``done`` (and no reply is queued), or
        until nothing changed (UserUttered count, inbox states) for ``quiet_s``. Rows marked
        ``failed`` may still have a turn queued in memory, so they do not end the wait."""
        started = time.monotonic()
        last: tuple | None = None
        last_change = started
        while time.monotonic() - started < timeout:
            states = self.inbox_states(prefix)
            turns = sum(self.user_turns(prefix).values())
            snapshot = (tuple(sorted(states.items())), turns, self.outbox_queued())
            if states.get("done", 0) >= expected and snapshot[2] == 0:
                return {"reason": "all done", "seconds": time.monotonic() - started}
            if snapshot != last:
                last, last_change = snapshot, time.monotonic()
            elif time.monotonic() - last_change > quiet_s:
                return {"reason": f"no change for {quiet_s} s",
                        "seconds": time.monotonic() - started}
            time.sleep(0.5)
        return {"reason": "timeout", "seconds": time.monotonic() - started}


@dataclass
class Stack:
    tmp: Path
    sim: SimulatorProcess
    node: RasaNode  # the first ``rasa run`` (every channel asked for, ingress process)
    actions: Proc | None = None
    fb_stub: Proc | None = None
    fb_port: int | None = None
    extra: list[Proc] = field(default_factory=list)
    status_sink: bool = False
    in_process: RasaNode | None = None  # second ``rasa run``: WhatsApp only, no ingress_port

    # ------------------------------------------------------------- lifecycle
    @classmethod
    def start(
        cls,
        *,
        facebook: bool = False,
        rest: bool = True,
        actions: bool = True,
        whatsapp_extra: dict | None = None,
        sim_args: Sequence[str] = (),
        tmp: Path | None = None,
        rasa_env: dict[str, str] | None = None,
        status_sink: bool = False,
        ingress: bool = False,
        in_process: bool = False,
        log=print,
    ) -> Stack:
        """``status_sink``: the simulator's webhooks (statuses) go to a sink instead of the bot.
        ``ingress``: give the channel an ``ingress_port`` and wait (30 s) for its ingress
        process; ``stack.ingress_port`` stays None (logged) if it never answers.
        ``in_process``: also start a second ``rasa run``, WhatsApp channel only, without
        ``ingress_port`` (``stack.in_process``)."""
        tmp = tmp or Path(tempfile.mkdtemp(prefix="wa-bench-"))
        rasa_port = free_port()
        ingress_port = free_port() if ingress else None
        fb_stub = fb_port = None
        started: list = []
        try:
            if facebook or status_sink:
                fb_stub, fb_port = start_fb_stub(tmp)
                started.append(fb_stub)
            webhook_url = (
                f"http://127.0.0.1:{fb_port}/sink"
                if status_sink
                else f"http://127.0.0.1:{rasa_port}{payloads.WHATSAPP_PATH}"
            )
            sim = start_simulator(webhook_url, extra_args=tuple(sim_args))
            started.append(sim)
            actions_proc = None
            actions_port = None
            if actions:
                actions_port = free_port()
                # the first rasa run's channel database (the second's handovers land there too)
                actions_store = f"sqlite:///{tmp / CHANNEL_SQLITE_FILE}"
                actions_proc = start_actions(tmp, actions_port, actions_store)
                started.append(actions_proc)
            config = RasaConfig(
                tmp=tmp,
                port=rasa_port,
                sim_url=sim.base_url,
                actions_port=actions_port,
                whatsapp_extra=dict(whatsapp_extra or {}),
                rest=rest,
                facebook_graph_url=f"http://127.0.0.1:{fb_port}/v2.6" if facebook else None,
                env=dict(rasa_env or {}),
                ingress_port=ingress_port,
            )
            node = RasaNode(config, start_rasa(config))
            started.append(node)
            second = None
            if in_process:
                second_tmp = tmp / "in-process"
                second_tmp.mkdir(exist_ok=True)
                second_config = replace(
                    config, tmp=second_tmp, port=free_port(), rest=False,
                    facebook_graph_url=None, ingress_port=None, name="rasa-in-process",
                    whatsapp_extra=dict(config.whatsapp_extra), env=dict(config.env),
                )
                log(f"second rasa run (WhatsApp only, no ingress_port) on port "
                    f"{second_config.port}, files in {second_tmp}")
                second = RasaNode(second_config, start_rasa(second_config))
        except BaseException:
            for proc in reversed(started):
                proc.stop()
            raise
        stack = cls(tmp, sim, node, actions_proc, fb_stub, fb_port,
                    status_sink=status_sink, in_process=second)
        if ingress_port:
            node.wait_ingress(log)
        return stack

    def nodes(self) -> list[RasaNode]:
        """Every ``rasa run`` of the stack, the first one first."""
        return [self.node] + ([self.in_process] if self.in_process is not None else [])

    def restart_rasa(self, log=print, node: RasaNode | None = None) -> None:
        """Start ``rasa run`` (``node``, default the first one) again with the same
        configuration (after a stop or kill)."""
        (node or self.node).restart(log)

    def stop(self) -> None:
        for proc in self.extra:
            proc.stop()
        for node in reversed(self.nodes()):
            node.stop()
        for proc in (self.actions, self.fb_stub):
            if proc is not None:
                proc.stop()
        self.sim.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- the first rasa run
    @property
    def rasa(self) -> Proc:
        return self.node.proc

    @property
    def rasa_port(self) -> int:
        return self.node.port

    @property
    def rasa_config(self) -> RasaConfig:
        return self.node.config

    @property
    def ingress_port(self) -> int | None:
        return self.node.ingress_port

    def ingress_pid(self) -> int | None:
        return self.node.ingress_pid()

    def rss_mb(self) -> float:
        """RSS of the first ``rasa run`` (``stack.in_process.rss_mb()`` for the second)."""
        return self.node.rss_mb()

    def ingress_rss_mb(self) -> float | None:
        return self.node.ingress_rss_mb()

    # ------------------------------------------------------------- database (first rasa run)
    @property
    def db_url(self) -> str:
        return self.node.db_url

    def engine(self) -> sa.engine.Engine:
        return self.node.engine()

    def scalar(self, sql: str, **params: object) -> object:
        return self.node.scalar(sql, **params)

    def rows(self, sql: str, **params: object) -> list:
        return self.node.rows(sql, **params)

    def tracker_rows(self, sql: str, **params: object) -> list:
        return self.node.tracker_rows(sql, **params)

    def inbox_states(self, prefix: str) -> Counter:
        return self.node.inbox_states(prefix)

    def outbox_queued(self) -> int:
        return self.node.outbox_queued()

    def user_turns(self, prefix: str) -> Counter:
        return self.node.user_turns(prefix)

    def wait_done(
        self, prefix: str, expected: int, *, timeout: float = 120.0, poll: float = 0.025
    ) -> float | None:
        return self.node.wait_done(prefix, expected, timeout=timeout, poll=poll)

    def wait_quiet(
        self, prefix: str, expected: int, *, quiet_s: float = 8.0, timeout: float = 240.0
    ) -> dict:
        return self.node.wait_quiet(prefix, expected, quiet_s=quiet_s, timeout=timeout)

    # ------------------------------------------------------------- simulator
    def register_with_simulator(self, messages: Sequence[dict]) -> None:
        """Tell the simulator these contact messages exist (service window, mark-as-read).

        Posts them through ``/_sim/webhook?sign=false``: the simulator records them and
        forwards the unsigned body, which the channel refuses with 403 (nothing processed).
        """
        for start in range(0, len(messages), REGISTER_BATCH):
            chunk = messages[start : start + REGISTER_BATCH]
            body = payloads.meta_json(payloads.whatsapp_envelope(chunk))
            answer = requests.post(
                f"{self.sim.base_url}/_sim/webhook",
                params={"sign": "false"},
                data=body,
                timeout=30,
            )
            answer.raise_for_status()
            status = answer.json()["webhook_status"]
            if status not in ((200,) if self.status_sink else (401, 403)):
                raise RuntimeError(f"unsigned registration webhook answered {status}")

    def fb_stats(self) -> dict:
        return requests.get(f"http://127.0.0.1:{self.fb_port}/_stats", timeout=10).json()

    def point_webhooks(self, port: int) -> None:
        """Send the simulator's webhooks (statuses, registrations) to the channel on ``port``
        (a ``rasa run`` port or the ingress port). Call when no webhook is pending."""
        if self.status_sink:
            return
        url = f"http://127.0.0.1:{port}{payloads.WHATSAPP_PATH}"
        answer = requests.post(
            f"{self.sim.base_url}/_sim/config", json={"webhook_url": url}, timeout=10
        )
        answer.raise_for_status()


def text_messages(prefix: str, contacts: Sequence[str], per_contact: int) -> list[list[dict]]:
    """``per_contact`` text messages for each contact, wamids ``<prefix><contact>_<n>``."""
    now = int(time.time())
    return [
        [
            payloads.text_message(f"{prefix}{contact}_{n}", contact, payloads.text_for(n), now + n)
            for n in range(per_contact)
        ]
        for contact in contacts
    ]


def whatsapp_requests(per_client: Sequence[Sequence[dict]]) -> list[list[bytes]]:
    """One signed single-message webhook per message."""
    return [
        [payloads.whatsapp_request(payloads.whatsapp_envelope([m]), APP_SECRET) for m in client]
        for client in per_client
    ]
