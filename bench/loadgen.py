"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams (loopback only).

Each client owns one keep-alive connection and sends its pre-built requests one after
the other, the next as soon as the previous answer is complete. The client side does no
JSON, no signing and no header objects in the timed loop, so on a 2-core machine it
takes as little CPU as possible away from the server under test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class Sample:
    """One request: when it started and ended (perf_counter seconds) and its status."""

    start: float
    end: float
    status: int
    body: bytes = b""

    @property
    def latency_ms(self) -> float:
        return (self.end - self.start) * 1000.0


@dataclass
class RunResult:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    timed_out: bool = False

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    @property
    def ok(self) -> int:
        return sum(1 for s in self.samples if s.status == 200)

    def latencies_ms(self) -> list[float]:
        return [s.latency_ms for s in self.samples]

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for sample in self.samples:
            counts[sample.status] = counts.get(sample.status, 0) + 1
        return counts


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self._reader = self._writer = None

    async def request(self, raw: bytes, *, keep_body: bool = False) -> tuple[int, bytes]:
        """Send ``raw`` (a complete request) and return (status, body)."""
        if self._writer is None:
            await self._open()
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(raw)
            return await asyncio.wait_for(self._read_response(keep_body), self.timeout)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            await self.close()
            raise

    async def _read_response(self, keep_body: bool) -> tuple[int, bytes]:
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            body = await self._read_chunked()
        elif length is not None:
            body = await self._reader.readexactly(length) if length else b""
        else:
            body = await self._reader.read()
            close = True
        if close:
            await self.close()
        return status, body if keep_body else b""

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)


async def _client(
    port: int,
    requests: Sequence[bytes],
    result: RunResult,
    deadline: float,
    keep_body: bool,
) -> None:
    connection = Connection(port)
    try:
        for raw in requests:
            if time.perf_counter() > deadline:
                result.timed_out = True
                return
            start = time.perf_counter()
            try:
                status, body = await connection.request(raw, keep_body=keep_body)
            except Exception as error:  # noqa: BLE001 - recorded, the run goes on
                result.errors.append(f"{type(error).__name__}: {error}")
                result.samples.append(Sample(start, time.perf_counter(), 0))
                continue
            result.samples.append(Sample(start, time.perf_counter(), status, body))
    finally:
        await connection.close()


async def closed_loop(
    port: int,
    per_client: Sequence[Sequence[bytes]],
    *,
    time_limit: float = 120.0,
    keep_body: bool = False,
) -> RunResult:
    """Run one client per item of ``per_client``, all at once; bounded by ``time_limit``."""
    result = RunResult()
    result.started = time.perf_counter()
    deadline = result.started + time_limit
    await asyncio.gather(
        *(_client(port, reqs, result, deadline, keep_body) for reqs in per_client)
    )
    result.finished = time.perf_counter()
    return result


def run_closed_loop(
    port: int,
    per_client: Sequence[Sequence[bytes]],
    *,
    time_limit: float = 120.0,
    keep_body: bool = False,
) -> RunResult:
    return asyncio.run(
        closed_loop(port, per_client, time_limit=time_limit, keep_body=keep_body)
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]
