"""Start and stop the processes of a benchmark: simulator, action server, ``rasa run``,
the Messenger Graph stub and the bare Sanic endpoint. Loopback only; every wait is bounded.

Processes are stopped by their own pid (terminate, then kill after a grace period).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from simulator.process import SimulatorProcess, free_port
from whatsapp_core.store_location import CHANNEL_SQLITE_FILE, STORE_URL_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = REPO_ROOT / "models" / "whatsapp-bot.tar.gz"
BIN = Path(sys.executable).parent
PYTHON = sys.executable

APP_SECRET = "bench-app-secret"
ACCESS_TOKEN = "bench-access-token"
VERIFY_TOKEN = "bench-verify"
FB_SECRET = "bench-fb-secret"
FB_VERIFY = "bench-fb-verify"
FB_TOKEN = "bench-fb-page-token"


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    return env


class Proc:
    """A subprocess with its output in ``log``."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict | None = None) -> None:
        self.name = name
        self.args = args
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                args, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=env or base_env()
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        """SIGKILL this process only (a crash)."""
        if self.alive():
            self.popen.kill()
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def wait_http(url: str, proc: Proc | None, timeout: float) -> None:
    """Poll ``url`` until it answers below 500; raise with the process log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout}s:\n{proc.tail() if proc else ''}")


def start_simulator(
    webhook_url: str | None, *, port: int | None = None, extra_args: tuple[str, ...] = ()
) -> SimulatorProcess:
    return SimulatorProcess(
        webhook_url=webhook_url,
        app_secret=APP_SECRET,
        access_token=ACCESS_TOKEN,
        port=port,
        extra_args=list(extra_args),
    ).start()


def start_actions(tmp: Path, port: int, store_url: str) -> Proc:
    """``rasa run actions`` writing the handover queue and the ledger to ``store_url``, the
    channel's database (else it would use ``whatsapp.db`` in the repository)."""
    proc = Proc(
        "rasa run actions",
        [str(BIN / "rasa"), "run", "actions", "--port", str(port), "--actions", "actions"],
        tmp / "actions.log",
        {**base_env(), STORE_URL_ENV: store_url},
    )
    wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=90)
    return proc


@dataclass
class RasaConfig:
    """What goes into the temporary credentials.yml / endpoints.yml of one ``rasa run``."""

    tmp: Path
    port: int
    sim_url: str
    actions_port: int | None = None
    tracker_store_yaml: str | None = None
    lock_store_yaml: str | None = None
    whatsapp_extra: dict[str, object] = field(default_factory=dict)
    rest: bool = True
    facebook_graph_url: str | None = None  # enables the facebook channel, pointed here
    name: str = "rasa"
    env: dict[str, str] = field(default_factory=dict)
    ingress_port: int | None = None  # the channel's ingress process (loopback), when set

    @property
    def tracker_path(self) -> Path:
        """Rasa's SQLite tracker store (unless ``tracker_store_yaml`` names another)."""
        return self.tmp / "rasa.db"

    @property
    def store_path(self) -> Path:
        """The channel's database beside it (:mod:`whatsapp_core.store_location`)."""
        return self.tmp / CHANNEL_SQLITE_FILE

    def write(self) -> tuple[Path, Path]:
        wa = {
            "verify_token": VERIFY_TOKEN,
            "app_secret": APP_SECRET,
            "access_token": ACCESS_TOKEN,
            "phone_number_id": "106540352242922",
            "api_base_url": self.sim_url,
            "api_version": "v21.0",
            "status_spool_dir": str(self.tmp / f"{self.name}-spool"),
            **({"ingress_port": self.ingress_port, "ingress_host": "127.0.0.1"}
               if self.ingress_port else {}),
            **self.whatsapp_extra,
        }
        lines = ["connectors.whatsapp_connector.WhatsAppInput:"]
        lines += [f"  {key}: {value}" for key, value in wa.items()]
        if self.rest:
            lines.append("rest:")
        if self.facebook_graph_url:
            lines += [
                "facebook:",
                f"  verify: {FB_VERIFY}",
                f"  secret: {FB_SECRET}",
                f"  page-access-token: {FB_TOKEN}",
            ]
        credentials = self.tmp / f"{self.name}-credentials.yml"
        credentials.write_text("\n".join(lines) + "\n")
        endpoints_lines = []
        if self.actions_port:
            endpoints_lines.append(
                f"action_endpoint:\n  url: http://127.0.0.1:{self.actions_port}/webhook"
            )
        endpoints_lines.append(
            self.tracker_store_yaml
            or f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {self.tracker_path}"
        )
        if self.lock_store_yaml:
            endpoints_lines.append(self.lock_store_yaml)
        endpoints = self.tmp / f"{self.name}-endpoints.yml"
        endpoints.write_text("\n".join(endpoints_lines) + "\n")
        return credentials, endpoints


def start_rasa(config: RasaConfig, *, timeout: float = 180.0) -> Proc:
    """``rasa run`` through bench/rasa_launcher.py (which can point Messenger sends at a stub)."""
    credentials, endpoints = config.write()
    env = base_env()
    if config.facebook_graph_url:
        env["BENCH_FB_GRAPH_URL"] = config.facebook_graph_url
    env.update(config.env)
    proc = Proc(
        config.name,
        [
            PYTHON,
            str(REPO_ROOT / "bench" / "rasa_launcher.py"),
            "run",
            "--model",
            str(MODEL),
            "--port",
            str(config.port),
            "--credentials",
            str(credentials),
            "--endpoints",
            str(endpoints),
        ],
        config.tmp / f"{config.name}.log",
        env,
    )
    wait_http(f"http://127.0.0.1:{config.port}/webhooks/whatsapp/", proc, timeout=timeout)
    return proc


INGRESS_MODULE = "connectors.whatsapp_ingress"


def ingress_health_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/webhooks/whatsapp/"


def wait_ingress(port: int, rasa: Proc, timeout: float = 30.0) -> bool:
    """Poll the ingress process's health URL until it answers 200; False after ``timeout``
    (or when ``rasa run`` exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and rasa.alive():
        try:
            if requests.get(ingress_health_url(port), timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _children() -> dict[int, list[int]]:
    """Every process's children (from /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def find_descendant(pid: int, marker: str) -> int | None:
    """The first descendant of ``pid`` whose command line contains ``marker``, or None."""
    children = _children()
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            return child
        todo.extend(children.get(child, []))
    return None


def start_python(name: str, module_args: list[str], tmp: Path, health_url: str) -> Proc:
    proc = Proc(name, [PYTHON, *module_args], tmp / f"{name}.log")
    wait_http(health_url, proc, timeout=60)
    return proc


def start_fb_stub(tmp: Path) -> tuple[Proc, int]:
    port = free_port()
    proc = start_python(
        "fb-graph-stub",
        [str(REPO_ROOT / "bench" / "graph_stub.py"), "--port", str(port)],
        tmp,
        f"http://127.0.0.1:{port}/_stats",
    )
    return proc, port


def start_bare_sanic(tmp: Path) -> tuple[Proc, int]:
    port = free_port()
    proc = start_python(
        "bare-sanic",
        [str(REPO_ROOT / "bench" / "bare_sanic.py"), "--port", str(port), "--secret", APP_SECRET],
        tmp,
        f"http://127.0.0.1:{port}/health",
    )
    return proc, port


__all__ = ["free_port", "SimulatorProcess"]
