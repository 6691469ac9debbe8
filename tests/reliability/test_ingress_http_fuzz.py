"""Fuzz the ingress process's HTTP server (connectors/ingress_http.py) with its real
webhook endpoint: mutated raw requests (bytes flipped, inserted and cut, odd
Content-Length and Transfer-Encoding, pipelined, split across writes at random) never
get a 5xx, never raise inside the server or the acceptor, and leave it answering good
webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from connectors.ingress_http import IngressHttpServer
from connectors.whatsapp_ingress import WebhookEndpoint, route
from tests.conftest import CORPUS_DIR
from tests.http.conftest import free_port
from tests.reliability import fuzzing
from tests.reliability.conftest import SECRET, credentials
from whatsapp_core.acceptor import WebhookAcceptor
from whatsapp_core.config import ChannelConfig
from whatsapp_core.signature import sign
from whatsapp_core.status_spool import StatusSpool
from whatsapp_core.store import WhatsAppStore
from whatsapp_core.webhook import MAX_BODY_BYTES

CORPUS = fuzzing.load_corpus(CORPUS_DIR)
PATH = b"/webhooks/whatsapp/webhook"
HEADS = [
    b"Content-Length: %d\r\n",
    b"Content-Length: %d\r\nContent-Length: %d\r\n",
    b"Content-Length: -%d\r\n",
    b"Content-Length: %d0000000000000000000\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n",
    b"Content-Length: %d\r\nExpect: 100-continue\r\n",
    b"Content-Length: %d\r\nConnection: upgrade\r\nUpgrade: h2c\r\n",
]


def request(rng: random.Random) -> bytes:
    body, signature, _ = fuzzing.case(CORPUS, SECRET, rng)
    head = rng.choice(HEADS[:1] * 6 + HEADS)
    head = head.replace(b"%d", str(len(body)).encode())
    if b"chunked" in head:
        body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    method = rng.choice([b"POST"] * 8 + [b"GET", b"PUT", b"HEAD", b"OPTIONS"])
    raw = (
        method + b" " + rng.choice([PATH] * 6 + [PATH + b"?hub.mode=subscribe", b"/", b"/x" * 50])
        + rng.choice([b" HTTP/1.1\r\n"] * 6 + [b" HTTP/1.0\r\n", b" HTTP/2\r\n", b"\r\n"])
        + b"Host: x\r\nX-Hub-Signature-256: " + (signature or "").encode("utf-8", "replace")
        + b"\r\n" + head + b"\r\n" + body
    )
    for _ in range(rng.choice([0, 0, 1, 3])):  # byte-level damage
        at = rng.randrange(len(raw))
        damage = rng.choice([
            bytes([rng.randrange(256)]),  # replaces one byte
            b"\r\n",
            b"",  # cuts a run of bytes
            b"\x00" * rng.randrange(1, 5),
        ])
        cut = 1 if len(damage) == 1 else (rng.randrange(1, 40) if not damage else 0)
        raw = raw[:at] + damage + raw[at + cut :]
    return raw


async def exchange(port: int, data: bytes, rng: random.Random) -> list[int]:
    """Write ``data`` in random pieces and half-close, then read every answer until the
    server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses: list[int] = []
    try:
        cuts = sorted(rng.sample(range(1, len(data)), k=min(3, len(data) - 1)))
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            writer.write(data[start:end])
            await writer.drain()
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        writer.write_eof()  # the server answers what is complete, then closes
        while True:
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line:
                break
            if line.startswith(b"HTTP/1.1 "):
                statuses.append(int(line.split()[1]))
    except OSError:  # the server reset a connection it refused (unread bytes)
        pass
    finally:
        writer.close()
    return statuses


def is_crash(record: logging.LogRecord) -> bool:
    """An exception in the server or while accepting (logged before a 503), as opposed to
    what the channel logs on purpose (a refused or dropped message)."""
    return record.levelno >= logging.ERROR and record.name in CRASH_LOGGERS


CRASH_LOGGERS = ("connectors.ingress_http", "connectors.webhook_routes")


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[int]:
    """The ingress server with its real webhook endpoint (store and spool in
    ``tmp_path``) on a free port; yields the port."""
    config = ChannelConfig.from_credentials(credentials(tmp_path))
    store = WhatsAppStore(config.store_url, instance_id="fuzz")
    acceptor = WebhookAcceptor(config, store, StatusSpool(tmp_path / "spool"))
    acceptor.start()
    endpoint = WebhookEndpoint(acceptor, lambda _accepted: None)
    server = IngressHttpServer(
        lambda r: route(r, config.verify_token, endpoint), max_body_bytes=MAX_BODY_BYTES
    )
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        yield port
    finally:
        await server.stop(grace=1)
        await acceptor.stop()
        store.close()


async def fuzz(port: int, cases: int, rng: random.Random) -> Counter:
    """``cases`` connections of 1-3 mutated requests each; the answers' statuses."""
    seen: Counter = Counter()
    for _ in range(cases):
        data = b"".join(request(rng) for _ in range(rng.choice([1, 1, 2, 3])))
        seen.update(await exchange(port, data, rng))
    return seen


async def good_webhook_answer(port: int) -> list[int]:
    body = json.dumps(CORPUS[0]).encode()
    return await exchange(
        port,
        b"POST " + PATH + b" HTTP/1.1\r\nContent-Length: %d\r\nX-Hub-Signature-256: %s\r\n"
        b"Connection: close\r\n\r\n" % (len(body), sign(body, SECRET).encode()) + body,
        random.Random(0),
    )


async def test_mutated_requests_never_get_a_5xx_nor_break_the_server(tmp_path, caplog):
    async with serving(tmp_path) as port:
        with caplog.at_level(logging.WARNING):
            seen = await fuzz(port, 1000, random.Random(7))
        assert all(status < 500 for status in seen), seen
        assert {200, 400, 403} <= set(seen), seen
        assert not [r.getMessage() for r in caplog.records if is_crash(r)]
        assert await good_webhook_answer(port) == [200]
