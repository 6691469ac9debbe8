"""Run the simulator as a subprocess on a free port (for pytest fixtures and benchmarks).

with SimulatorProcess(webhook_url="http://127.0.0.1:5005/webhooks/whatsapp/webhook") as sim:
    sim.client.inbound_text("16505551234", "hi")
    requests.post(f"{sim.graph_url()}/{sim.phone_number_id}/messages", ...)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from simulator.client import SimulatorClient
from simulator.config import (
    DEFAULT_DISPLAY_PHONE_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_WABA_ID,
)

PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class SimulatorProcess:
    """``python -m simulator`` in a subprocess; :meth:`start` returns once it answers HTTP.

    ``webhook_url`` None disables webhook delivery. ``extra_args`` are passed through (e.g.
    ``["--status-delay", "0"]``). The process's output goes to ``log_path``.
    """

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        app_secret: str = "SECRET",
        access_token: str = "TOKEN",
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
        waba_id: str = DEFAULT_WABA_ID,
        templates: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.app_secret = app_secret
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id
        self.startup_timeout = startup_timeout
        self.args = [
            sys.executable,
            "-m",
            "simulator",
            "--host",
            host,
            "--port",
            str(self.port),
            "--webhook-url",
            webhook_url or "",
            "--app-secret",
            app_secret,
            "--access-token",
            access_token,
            "--phone-number-id",
            phone_number_id,
            "--display-phone-number",
            display_phone_number,
            "--waba-id",
            waba_id,
            *(["--templates", str(templates)] if templates else []),
            *extra_args,
        ]
        self.log_path = Path(tempfile.mkstemp(prefix="simulator-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None
        self._client: SimulatorClient | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def graph_url(self, version: str = "v21.0") -> str:
        """Base URL to use instead of ``https://graph.facebook.com/<version>``."""
        return f"{self.base_url}/{version}"

    @property
    def client(self) -> SimulatorClient:
        if self._client is None:
            self._client = SimulatorClient(self.base_url)
        return self._client

    def start(self) -> SimulatorProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p
        )
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"simulator exited early:\n{self.log()}")
            try:
                requests.get(f"{self.base_url}/_sim/clock", timeout=0.5)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"simulator did not answer within {self.startup_timeout}s:\n{self.log()}"
        )

    def log(self) -> str:
        """The subprocess's output so far (empty once stopped)."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the process (kill after 5 s), close the client, delete the log."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
