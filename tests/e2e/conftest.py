"""End-to-end: the simulator, `rasa run actions` and `rasa run` as real processes on loopback.

Started once per test session (rasa run takes ~20 s to load); each test uses its own
contact numbers so tests do not see each other's conversations.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from simulator.process import SimulatorProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = REPO_ROOT / "models" / "whatsapp-bot.tar.gz"
RASA = str(Path(sys.executable).parent / "rasa")
SECRET = "e2e-app-secret"
TOKEN = "e2e-access-token"
VERIFY = "e2e-verify"
FOLLOW_UP_AFTER = 6


@dataclass
class Bot:
    """Handles on the running processes."""

    sim: SimulatorProcess
    rasa_url: str
    tmp: Path
    store_path: Path  # the channel's database (Rasa's tracker store is rasa.db beside it)

    @property
    def client(self):
        return self.sim.client


class _Process:
    def __init__(self, name: str, args: list[str], log: Path, env: dict) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                args, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _wait_http(url: str, process: _Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{process.name} did not start in {timeout}s:\n{process.tail()}")


def start_rasa(tmp: Path, sim: SimulatorProcess, rasa_port: int, actions_port: int, env: dict,
               extra_credentials: str = "") -> _Process:
    tracker_path = tmp / "rasa.db"
    (tmp / "credentials.yml").write_text(
        "connectors.whatsapp_connector.WhatsAppInput:\n"
        f"  verify_token: {VERIFY}\n"
        f"  app_secret: {SECRET}\n"
        f"  access_token: {TOKEN}\n"
        f"  phone_number_id: {sim.phone_number_id}\n"
        f"  api_base_url: {sim.base_url}\n"
        "  api_version: v21.0\n"
        "  recovery_lease_seconds: 2\n"
        f"  status_spool_dir: {tmp / 'spool'}\n"
        f"  follow_up_after_seconds: {FOLLOW_UP_AFTER}\n" + extra_credentials
    )
    (tmp / "endpoints.yml").write_text(
        f"action_endpoint:\n  url: http://127.0.0.1:{actions_port}/webhook\n"
        f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {tracker_path}\n"
    )
    rasa = _Process(
        "rasa run",
        [RASA, "run", "--model", str(MODEL), "--port", str(rasa_port),
         "--credentials", str(tmp / "credentials.yml"), "--endpoints", str(tmp / "endpoints.yml")],
        tmp / "rasa.log",
        env,
    )
    _wait_http(f"http://127.0.0.1:{rasa_port}/webhooks/whatsapp/", rasa, timeout=120)
    return rasa


@contextlib.contextmanager
def running_bot(tmp: Path, extra_credentials: str = "") -> Iterator[Bot]:
    """The simulator, `rasa run actions` and `rasa run` as processes, stopped on exit."""
    assert MODEL.exists(), "train first: ./bin/train"
    rasa_port, actions_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WHATSAPP_STORE_URL": f"sqlite:///{tmp / 'whatsapp.db'}"}
    sim = SimulatorProcess(
        webhook_url=f"http://127.0.0.1:{rasa_port}/webhooks/whatsapp/webhook",
        app_secret=SECRET,
        access_token=TOKEN,
    ).start()
    actions = _Process(
        "rasa run actions",
        [RASA, "run", "actions", "--port", str(actions_port), "--actions", "actions"],
        tmp / "actions.log",
        env,
    )
    rasa = None
    try:
        _wait_http(f"http://127.0.0.1:{actions_port}/health", actions, timeout=60)
        rasa = start_rasa(tmp, sim, rasa_port, actions_port, env, extra_credentials)
        yield Bot(sim, f"http://127.0.0.1:{rasa_port}", tmp, tmp / "whatsapp.db")
    finally:
        if rasa is not None:
            rasa.stop()
        actions.stop()
        sim.stop()


@pytest.fixture(scope="session")
def bot(tmp_path_factory):
    with running_bot(tmp_path_factory.mktemp("e2e")) as running:
        yield running
