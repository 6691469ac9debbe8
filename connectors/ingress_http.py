"""The ingress process's HTTP server: HTTP/1.1 on asyncio and httptools, for the webhook
routes only.

The ingress process serves three routes (:mod:`connectors.webhook_routes`) and nothing
else, at the rate Meta sends status webhooks (three per reply). Sanic 21.12 costs it
about 0.2 ms of CPU per request (its request object, router, signals and the
Content-Length guard that has to run as a signal); this server does the same work in a
few tens of microseconds. The HTTP parsing is httptools (llhttp, the parser of Node.js;
the one Sanic and uvicorn use), which refuses malformed requests, invalid and duplicate
Content-Length, and decodes chunked bodies; this module frames requests and answers.

Contract:

- HTTP/1.1 keep-alive (HTTP/1.0 only with ``Connection: keep-alive``); pipelined
  requests are answered one after the other, in order.
- A malformed request (invalid Content-Length included) is a 400, a body over
  ``max_body_bytes`` (declared or chunked) a 413, a request head over
  ``max_head_bytes`` a 431, an upgrade request a 400: answered, logged, connection closed.
- ``Expect: 100-continue`` is answered with ``100 Continue`` unless the body is too large.
- A client that half-closes its side still gets the answers to its complete requests.
- A request not complete within ``request_timeout`` seconds of its first byte is a 408;
  a keep-alive connection idle for ``keep_alive_timeout`` seconds is closed.
- ``handle`` gets each complete :class:`HttpRequest` and returns an :class:`HttpAnswer`,
  or an awaitable of one (a request that has to wait for something); if it raises, the
  answer is a 503 (logged). An answer given at once is written at once, without a task.
  A connection closed by the client while its request is handled does not cancel the
  handler (a webhook being stored is stored); the answer is dropped.
- :meth:`IngressHttpServer.stop` stops listening, lets requests being handled finish
  (up to ``grace`` seconds) and closes every connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import httptools

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8 * 1024
"""Request line and headers; Sanic's default limit too."""

MAX_PIPELINED = 32
"""Complete requests waiting on one connection before it stops reading."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One complete request: ``method`` upper case, ``path`` and ``query`` as sent
    (percent-encoded), ``headers`` with lower-case names (the last of repeated ones)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An answer: status, body and content type (plus ``Allow`` for a 405)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    allow: str | None = None

    @classmethod
    def text(cls, status: int, text: str) -> HttpAnswer:
        return _text_answer(status, text)


@functools.lru_cache(maxsize=256)
def _text_answer(status: int, text: str) -> HttpAnswer:
    return HttpAnswer(status, text.encode())


Handler = Callable[[HttpRequest], "HttpAnswer | Awaitable[HttpAnswer]"]
"""Answers a request: at once (an :class:`HttpAnswer`) or later (an awaitable of one)."""


class _Refused(Exception):
    """Raised in a parser callback to stop parsing and answer ``status``, then close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class IngressHttpServer:
    """See the module docstring."""

    def __init__(
        self,
        handle: Handler,
        *,
        max_body_bytes: int,
        max_head_bytes: int = MAX_HEAD_BYTES,
        request_timeout: float = 60.0,
        keep_alive_timeout: float = 75.0,
        sweep_every: float = 1.0,
    ) -> None:
        self.handle = handle
        self.max_body_bytes = max_body_bytes
        self.max_head_bytes = max_head_bytes
        self.request_timeout = request_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.sweep_every = sweep_every
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_Connection] = set()
        self._sweeper: asyncio.Task | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self, grace: float = 10.0) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
        busy = [c.worker for c in self._connections if c.worker is not None]
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for connection in list(self._connections):
            connection.close()

    async def _sweep(self) -> None:
        """Close connections past their deadline (a timer per connection would cost a
        timer per request)."""
        while True:
            await asyncio.sleep(self.sweep_every)
            now = time.monotonic()
            for connection in list(self._connections):
                connection.check_deadline(now)


class _Connection(asyncio.Protocol):
    """One client connection: feeds the parser, queues complete requests, answers them
    in order from one worker task."""

    def __init__(self, server: IngressHttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[tuple[HttpRequest, bool]] = deque()
        self.worker: asyncio.Task | None = None
        self.paused = False
        self.refusal: HttpAnswer | None = None  # answered after the pending requests
        self.eof = False  # the client has sent everything it will send
        self.last_activity = 0.0  # a request begun or answered (time.monotonic)
        self.in_request = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.head_bytes = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_bytes = 0

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)
        self.last_activity = time.monotonic()

    def connection_lost(self, _exc: Exception | None) -> None:
        self.server._connections.discard(self)
        self.pending.clear()
        self.transport = None

    def eof_received(self) -> bool | None:
        """The client half-closed: answer the requests being handled, then close (an
        incomplete request can never complete)."""
        if self.worker is None:
            return None  # nothing in flight: the transport closes
        self.eof = True
        return True

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None or self.transport is None or self.transport.is_closing():
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            refused = error.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status, str(refused))
            else:
                logger.exception("HTTP request refused: %s", refused)
                self._refuse(400, "bad request")
        except httptools.HttpParserUpgrade:  # CONNECT (an Upgrade is refused above)
            self._refuse(400, "upgrade not supported")
        except httptools.HttpParserError as error:
            self._refuse(400, f"bad request ({error})")

    # ------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        self._reset()
        self.in_request = True
        self.last_activity = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.server.max_head_bytes:
            raise _Refused(431, "request header fields too large")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        declared = self.headers.get("content-length")
        if declared is not None and int(declared) > self.server.max_body_bytes:
            raise _Refused(413, "payload too large")
        if self.headers.get("expect", "").lower() == "100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.server.max_body_bytes:
            raise _Refused(413, "payload too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.should_upgrade():
            raise _Refused(400, "upgrade not supported")
        path, _, query = self.url.partition(b"?")
        request = HttpRequest(
            method=self.parser.get_method().decode("ascii", "replace").upper(),
            path=path.decode("latin-1"),
            query=query.partition(b"#")[0].decode("latin-1"),
            headers=self.headers,
            body=b"".join(self.body),
        )
        self.in_request = False
        if self.transport is None or self.transport.is_closing():
            return  # answered "connection: close" already
        keep_alive = self.parser.should_keep_alive()
        if self.worker is None:
            answer = self._answer_now(request)
            if isinstance(answer, HttpAnswer):
                self._write(answer, keep_alive)
                return
            self.worker = asyncio.create_task(self._work(answer, keep_alive))
            return
        self.pending.append((request, keep_alive))
        if len(self.pending) >= MAX_PIPELINED and self.transport and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    # ------------------------------------------------------------ answering
    def _answer_now(self, request: HttpRequest) -> HttpAnswer | Awaitable[HttpAnswer]:
        try:
            return self.server.handle(request)
        except Exception:  # noqa: BLE001 - one request's failure answers 503
            logger.exception("HTTP request could not be handled")
            return _UNAVAILABLE

    async def _work(self, first: Awaitable[HttpAnswer], keep_alive: bool) -> None:
        """Answer ``first`` once awaited, then the requests pipelined behind it, in order."""
        answer: HttpAnswer | Awaitable[HttpAnswer] = first
        try:
            while True:
                if not isinstance(answer, HttpAnswer):
                    try:
                        answer = await answer
                    except Exception:  # noqa: BLE001 - one request's failure answers 503
                        logger.exception("HTTP request could not be handled")
                        answer = _UNAVAILABLE
                if not self._write(answer, keep_alive) or not self.pending:
                    break
                if self.paused and self.refusal is None and len(self.pending) < MAX_PIPELINED // 2:
                    self.paused = False
                    self.transport.resume_reading()
                request, keep_alive = self.pending.popleft()
                answer = self._answer_now(request)
            if self.refusal is not None:
                self._write_refusal()
        finally:
            self.worker = None
            if self.eof:
                self.close()

    def _write(self, answer: HttpAnswer, keep_alive: bool) -> bool:
        """Write ``answer``; False when the connection is (now) closed."""
        if self.transport is None:
            return False
        self.transport.write(_encode(answer, keep_alive))
        self.last_activity = time.monotonic()
        if not keep_alive:
            self.close()
            return False
        return True

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` after the requests already complete on this connection,
        then close it; nothing more is read from it."""
        logger.warning("HTTP request refused with %d: %s", status, reason)
        self.refusal = HttpAnswer.text(status, reason)
        self.in_request = False
        if self.transport is None:
            return
        if not self.paused and not self.transport.is_closing():
            self.paused = True
            self.transport.pause_reading()
        if self.worker is None:
            self._write_refusal()

    def _write_refusal(self) -> None:
        if self.transport is not None and self.refusal is not None:
            self.transport.write(_encode(self.refusal, keep_alive=False))
            self.close()

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.server.max_head_bytes:
            raise _Refused(431, "request header fields too large")

    def check_deadline(self, now: float) -> None:
        """408 for a request incomplete after ``request_timeout``; close a connection
        idle for ``keep_alive_timeout``; nothing while a request is being handled."""
        if self.worker is not None:
            return
        if self.in_request:
            if now - self.last_activity > self.server.request_timeout:
                self._refuse(408, "request timeout")
        elif now - self.last_activity > self.server.keep_alive_timeout:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


@functools.lru_cache(maxsize=256)
def _encode(answer: HttpAnswer, keep_alive: bool) -> bytes:
    """The answer's bytes (cached: most answers are one of a few, "200 ok" above all)."""
    head = [
        f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, 'Unknown')}",
        f"content-type: {answer.content_type}",
        f"content-length: {len(answer.body)}",
        "connection: keep-alive" if keep_alive else "connection: close",
    ]
    if answer.allow:
        head.append(f"allow: {answer.allow}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer.body


_UNAVAILABLE = HttpAnswer(503, b"temporarily unavailable")
_REASONS = {status.value: status.phrase for status in HTTPStatus}
