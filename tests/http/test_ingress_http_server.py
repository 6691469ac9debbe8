"""The ingress process's HTTP server (connectors/ingress_http.py), over raw sockets:
keep-alive, pipelining, every refusal (400/408/413/431), Expect, HTTP/1.0, stop."""

from __future__ import annotations

import asyncio

import pytest

from connectors.ingress_http import HttpAnswer, HttpRequest, IngressHttpServer
from tests.http.conftest import free_port


class Recorder:
    """A handler that records requests: ``/sync...`` paths are answered at once, others
    by a coroutine that ``gate`` (when set) holds; ``/boom`` raises, ``/sync-boom`` too."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.finished: list[bytes] = []
        self.gate: asyncio.Event | None = None

    def __call__(self, request: HttpRequest):
        self.requests.append(request)
        if request.path == "/sync-boom":
            raise RuntimeError("handler failed at once")
        if request.path.startswith("/sync"):
            self.finished.append(request.body)
            return self.answer(request)
        return self.later(request)

    async def later(self, request: HttpRequest) -> HttpAnswer:
        if request.path == "/boom":
            raise RuntimeError("handler failed")
        if self.gate is not None:
            await self.gate.wait()
        self.finished.append(request.body)
        return self.answer(request)

    @staticmethod
    def answer(request: HttpRequest) -> HttpAnswer:
        return HttpAnswer.text(200, f"{request.method} {request.path} {len(request.body)}")


@pytest.fixture
async def served():
    handler = Recorder()
    server = IngressHttpServer(
        handler, max_body_bytes=1000, request_timeout=0.3, keep_alive_timeout=0.6,
        sweep_every=0.05,
    )
    port = free_port()
    await server.start("127.0.0.1", port)
    yield server, handler, port
    await server.stop(grace=1)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.split(": ", 1) for line in lines)
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split(" ")[1]), headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


def post(body: bytes, path: str = "/webhook", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def connect(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(served):
    _server, handler, port = served
    reader, writer = await connect(port)
    writer.write(post(b"one") + post(b"second") + b"GET /h?a=1&b=%20 HTTP/1.1\r\n\r\n")
    answers = [await read_answer(reader) for _ in range(3)]
    assert [a[2] for a in answers] == [b"POST /webhook 3", b"POST /webhook 6", b"GET /h 0"]
    assert all(a[0] == 200 and a[1]["connection"] == "keep-alive" for a in answers)
    assert handler.requests[2].query == "a=1&b=%20"
    writer.write(post(b"later"))  # the same connection is still usable
    assert (await read_answer(reader))[2] == b"POST /webhook 5"
    writer.close()


async def test_answers_given_at_once_and_later_keep_the_order_of_the_requests(served):
    _server, handler, port = served
    handler.gate = asyncio.Event()
    reader, writer = await connect(port)
    writer.write(post(b"a", path="/sync") + post(b"bb") + post(b"ccc", path="/sync"))
    await asyncio.sleep(0.1)
    assert handler.finished == [b"a"]  # the second waits; the third waits behind it
    handler.gate.set()
    answers = [(await read_answer(reader))[2] for _ in range(3)]
    assert answers == [b"POST /sync 1", b"POST /webhook 2", b"POST /sync 3"]
    writer.write(post(b"dddd", path="/sync"))
    assert (await read_answer(reader))[2] == b"POST /sync 4"
    writer.close()


async def test_header_names_are_lower_case_and_chunked_bodies_are_joined(served):
    _server, handler, port = served
    reader, writer = await connect(port)
    writer.write(
        b"POST /webhook HTTP/1.1\r\nX-Hub-Signature-256: sha256=ab\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert (await read_answer(reader))[2] == b"POST /webhook 5"
    assert handler.requests[0].headers["x-hub-signature-256"] == "sha256=ab"
    assert handler.requests[0].body == b"abcde"
    writer.close()


@pytest.mark.parametrize(
    "head",
    [
        "Content-Length: -1",
        "Content-Length: abc",
        "Content-Length: 1 1",
        "Content-Length: 3\r\nContent-Length: 4",
        "Upgrade: websocket\r\nConnection: upgrade",
    ],
)
async def test_malformed_requests_are_a_400_and_close_the_connection(served, head):
    _server, handler, port = served
    reader, writer = await connect(port)
    writer.write(f"POST /webhook HTTP/1.1\r\n{head}\r\n\r\nabc".encode())
    status, headers, _ = await read_answer(reader)
    assert (status, headers["connection"]) == (400, "close")
    assert await closed(reader)
    assert handler.requests == []
    writer.close()


async def test_garbage_is_a_400(served):
    _server, _handler, port = served
    reader, writer = await connect(port)
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n")
    assert (await read_answer(reader))[0] == 400
    assert await closed(reader)


async def test_bodies_over_the_limit_are_a_413_declared_or_chunked(served):
    _server, handler, port = served
    reader, writer = await connect(port)
    writer.write(b"POST /webhook HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")
    assert (await read_answer(reader))[0] == 413
    assert await closed(reader)
    reader, writer = await connect(port)
    writer.write(b"POST /webhook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):
        writer.write(b"190\r\n" + b"x" * 400 + b"\r\n")
    assert (await read_answer(reader))[0] == 413
    assert await closed(reader)
    assert handler.requests == []


async def test_a_head_over_the_limit_is_a_431(served):
    _server, _handler, port = served
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    assert (await read_answer(reader))[0] == 431
    assert await closed(reader)


async def test_a_request_after_pipelined_good_ones_is_refused_after_their_answers(served):
    _server, handler, port = served
    handler.gate = asyncio.Event()
    reader, writer = await connect(port)
    writer.write(post(b"ok") + b"POST /webhook HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
    await asyncio.sleep(0.1)
    handler.gate.set()
    assert [(await read_answer(reader))[0] for _ in range(2)] == [200, 400]
    assert await closed(reader)


async def test_expect_100_continue_is_answered(served):
    _server, _handler, port = served
    reader, writer = await connect(port)
    writer.write(b"POST /webhook HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(b"hi")
    assert (await read_answer(reader))[2] == b"POST /webhook 2"


async def test_http_1_0_closes_unless_keep_alive(served):
    _server, _handler, port = served
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    assert (await read_answer(reader))[1]["connection"] == "close"
    assert await closed(reader)
    reader, writer = await connect(port)
    writer.write(b"GET /sync HTTP/1.0\r\n\r\n" * 2)  # the second is never answered
    assert (await read_answer(reader))[1]["connection"] == "close"
    assert await closed(reader)
    reader, writer = await connect(port)
    writer.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
    assert [(await read_answer(reader))[0] for _ in range(2)] == [200, 200]
    writer.close()


async def test_a_failing_handler_is_a_503_and_the_connection_stays(served):
    _server, _handler, port = served
    reader, writer = await connect(port)
    writer.write(post(b"", path="/boom") + post(b"", path="/sync-boom") + post(b"x"))
    assert [(await read_answer(reader))[0] for _ in range(3)] == [503, 503, 200]
    writer.write(post(b"", path="/sync-boom"))
    assert (await read_answer(reader))[0] == 503
    writer.close()


async def test_an_incomplete_request_times_out_with_408_and_idle_connections_close(served):
    _server, _handler, port = served
    reader, writer = await connect(port)
    writer.write(b"POST /webhook HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert (await read_answer(reader))[0] == 408
    assert await closed(reader)
    reader, writer = await connect(port)
    writer.write(post(b"x"))
    assert (await read_answer(reader))[0] == 200
    assert await closed(reader)  # idle past keep_alive_timeout


async def test_a_client_that_half_closes_gets_its_answers(served):
    _server, handler, port = served
    handler.gate = asyncio.Event()
    reader, writer = await connect(port)
    writer.write(post(b"1", path="/sync") + post(b"22") + post(b"333"))
    writer.write_eof()
    await asyncio.sleep(0.1)
    handler.gate.set()
    assert [(await read_answer(reader))[2] for _ in range(3)] == [
        b"POST /sync 1", b"POST /webhook 2", b"POST /webhook 3"
    ]
    assert await closed(reader)


async def test_a_client_gone_does_not_cancel_its_request(served):
    _server, handler, port = served
    handler.gate = asyncio.Event()
    _reader, writer = await connect(port)
    writer.write(post(b"kept"))
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.1)
    handler.gate.set()
    await asyncio.sleep(0.1)
    assert handler.finished == [b"kept"]


async def test_stop_finishes_requests_being_handled_and_refuses_new_connections():
    handler = Recorder()
    handler.gate = asyncio.Event()
    server = IngressHttpServer(handler, max_body_bytes=1000)
    port = free_port()
    await server.start("127.0.0.1", port)
    reader, writer = await connect(port)
    writer.write(post(b"in flight"))
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(server.stop(grace=5))
    await asyncio.sleep(0.1)
    with pytest.raises(OSError):
        await connect(port)
    handler.gate.set()
    assert (await read_answer(reader))[2] == b"POST /webhook 9"
    await stopping
    assert await closed(reader)
