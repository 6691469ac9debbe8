"""The running stack of a benchmark or reliability run, and helpers to drive and inspect it.

``Stack`` starts the simulator (statuses delivered to the bot), the action server, one
``rasa run`` with the WhatsApp channel (plus Rasa's ``rest`` and ``facebook`` channels
when asked) on a SQLite tracker store in a temporary directory. With ``ingress=True`` the
channel also gets an ``ingress_port``: its ingress process (a child of ``rasa run``) serves
the same webhook routes there; :meth:`Stack.point_webhooks` chooses which port the
simulator's webhooks (statuses) go to.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
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

REGISTER_BATCH = 400


@dataclass
class Stack:
    tmp: Path
    rasa_port: int
    sim: SimulatorProcess
    rasa: Proc
    rasa_config: RasaConfig
    actions: Proc | None = None
    fb_stub: Proc | None = None
    fb_port: int | None = None
    extra: list[Proc] = field(default_factory=list)
    _engine: sa.engine.Engine | None = None
    status_sink: bool = False
    ingress_port: int | None = None  # set once the ingress process answered its health URL
    _ingress_pid: int | None = None

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
        log=print,
    ) -> Stack:
        """``status_sink``: the simulator's webhooks (statuses) go to a sink instead of the bot.
        ``ingress``: give the channel an ``ingress_port`` and wait (30 s) for its ingress
        process; ``stack.ingress_port`` stays None (logged) if it never answers."""
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
                actions_proc = start_actions(tmp, actions_port)
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
            rasa = start_rasa(config)
        except BaseException:
            for proc in reversed(started):
                proc.stop()
            raise
        stack = cls(tmp, rasa_port, sim, rasa, config, actions_proc, fb_stub, fb_port)
        stack.status_sink = status_sink
        if ingress_port:
            stack._wait_ingress(log)
        return stack

    def _wait_ingress(self, log) -> None:
        port = self.rasa_config.ingress_port
        assert port
        self._ingress_pid = None
        if wait_ingress(port, self.rasa, timeout=30):
            self.ingress_port = port
            log(f"ingress process answers on port {port} (pid {self.ingress_pid()})")
        else:
            self.ingress_port = None
            log(f"ingress process: no 200 from http://127.0.0.1:{port}/webhooks/whatsapp/ "
                "within 30 s of rasa run being ready (is `ingress_port` implemented?): "
                "the ingress variant is skipped")

    def restart_rasa(self, log=print) -> None:
        """Start ``rasa run`` again with the same configuration (after a stop or kill)."""
        self.rasa.stop()
        self.rasa = start_rasa(self.rasa_config)
        if self.rasa_config.ingress_port:
            self._wait_ingress(log)

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        for proc in [*self.extra, self.rasa, self.actions, self.fb_stub]:
            if proc is not None:
                proc.stop()
        self.sim.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- database
    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.rasa_config.db_path}"

    def engine(self) -> sa.engine.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(
                self.db_url, future=True, connect_args={"timeout": 30}
            )
        return self._engine

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine().connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list:
        with self.engine().connect() as connection:
            return list(connection.execute(sa.text(sql), params).fetchall())

    def inbox_states(self, prefix: str) -> Counter:
        rows = self.rows(
            "SELECT state, count(*) FROM whatsapp_inbox WHERE message_id LIKE :p GROUP BY state",
            p=prefix + "%",
        )
        return Counter({state: n for state, n in rows})

    def outbox_queued(self) -> int:
        return int(self.scalar("SELECT count(*) FROM whatsapp_outbox WHERE state = 'queued'"))

    def user_turns(self, prefix: str) -> Counter:
        """UserUttered events per message id starting with ``prefix`` (Rasa's events table)."""
        counts: Counter = Counter()
        for (data,) in self.rows("SELECT data FROM events WHERE type_name = 'user'"):
            message_id = json.loads(data).get("message_id") or ""
            if message_id.startswith(prefix):
                counts[message_id] += 1
        return counts

    def wait_done(
        self, prefix: str, expected: int, *, timeout: float = 120.0, poll: float = 0.025
    ) -> float | None:
        """Wait until ``expected`` inbox rows with ``prefix`` are done and no reply is queued;
        return the ``time.perf_counter()`` at which that was first seen, None on timeout."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            states = self.inbox_states(prefix)
            if states.get("done", 0) + states.get("failed", 0) >= expected:
                if self.outbox_queued() == 0:
                    return time.perf_counter()
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
        (the ``rasa run`` port or the ingress port). Call when no webhook is pending."""
        if self.status_sink:
            return
        url = f"http://127.0.0.1:{port}{payloads.WHATSAPP_PATH}"
        answer = requests.post(
            f"{self.sim.base_url}/_sim/config", json={"webhook_url": url}, timeout=10
        )
        answer.raise_for_status()

    def ingress_pid(self) -> int | None:
        """Pid of the ingress process: the descendant of ``rasa run`` whose command line
        names ``connectors.whatsapp_ingress`` (looked up again if it went away)."""
        if self.ingress_port is None:
            return None
        if self._ingress_pid is None or not Path(f"/proc/{self._ingress_pid}").exists():
            self._ingress_pid = find_descendant(self.rasa.pid, INGRESS_MODULE)
        return self._ingress_pid

    def rss_mb(self) -> float:
        return self.rasa.rss_mb()

    def ingress_rss_mb(self) -> float | None:
        pid = self.ingress_pid()
        if pid is None:
            return None
        try:
            return rss_mb(pid)
        except OSError:
            return None


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
