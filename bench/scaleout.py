"""PostgreSQL, Redis and several ``rasa run`` instances behind one port, on loopback.

Used by bench/reliability_scaleout.py. PostgreSQL (Debian's ``postgresql-15``) and Redis
(``redis-server``) run from temporary directories on free ports, as child processes of
this script, stopped by pid at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from bench.procs import PYTHON, REPO_ROOT, Proc, RasaConfig, free_port, start_rasa

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PASSWORD = "bench"


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *args]


class Postgres:
    def __init__(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise RuntimeError("PostgreSQL 15 is not installed: apt-get install postgresql")
        self.dir = Path(tempfile.mkdtemp(prefix="wa-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                          "--auth=trust", "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True,
        )
        self.proc = Proc(
            "postgres",
            _as_postgres([str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
                          "-c", "listen_addresses=127.0.0.1", "-k", str(self.dir),
                          "-c", "max_connections=200", "-c", "shared_buffers=128MB"]),
            Path(tempfile.mkstemp(prefix="wa-pg-", suffix=".log")[1]),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                              dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline or not self.proc.alive():
                    raise RuntimeError(f"postgres did not start:\n{self.proc.tail()}") from None
                time.sleep(0.2)
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE rasa")
        connection.close()

    def url(self, db: str = "rasa") -> str:
        return f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{self.port}/{db}"

    def tracker_store_yaml(self) -> str:
        return (
            "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: 127.0.0.1\n"
            f"  port: {self.port}\n  db: rasa\n  username: postgres\n  password: {PG_PASSWORD}"
        )

    def stop(self) -> None:
        self.proc.stop()  # SIGTERM: PostgreSQL's "smart" shutdown of this cluster only
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        self.port = free_port()
        log = Path(tempfile.mkstemp(prefix="wa-redis-", suffix=".log")[1])
        self.proc = Proc("redis", [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"], log)
        import redis

        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis(host="127.0.0.1", port=self.port).ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or not self.proc.alive():
                    raise RuntimeError(f"redis did not start:\n{self.proc.tail()}") from None
                time.sleep(0.1)

    def lock_store_yaml(self) -> str:
        return f"lock_store:\n  type: redis\n  url: 127.0.0.1\n  port: {self.port}\n  db: 1"

    def stop(self) -> None:
        self.proc.stop()


def start_proxy(tmp: Path, backends: list[str]) -> tuple[Proc, int]:
    port = free_port()
    args = [PYTHON, str(REPO_ROOT / "bench" / "rr_proxy.py"), "--port", str(port)]
    for backend in backends:
        args += ["--backend", backend]
    proc = Proc("rr-proxy", args, tmp / "proxy.log")
    from bench.procs import wait_http

    wait_http(f"http://127.0.0.1:{port}/_proxy/stats", proc, timeout=30)
    return proc, port


def rasa_configs(tmp: Path, count: int, sim_url: str, actions_port: int, pg: Postgres,
                 redis_: Redis, whatsapp_extra: dict) -> list[RasaConfig]:
    return [
        RasaConfig(
            tmp=tmp, port=free_port(), sim_url=sim_url, actions_port=actions_port,
            tracker_store_yaml=pg.tracker_store_yaml(), lock_store_yaml=redis_.lock_store_yaml(),
            whatsapp_extra=dict(whatsapp_extra), rest=False, name=f"rasa{index + 1}",
        )
        for index in range(count)
    ]


__all__ = ["Postgres", "Redis", "start_proxy", "rasa_configs", "start_rasa"]
