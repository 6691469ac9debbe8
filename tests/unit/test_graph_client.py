"""The Graph API client (whatsapp_core.graph_client) and its retry policy (whatsapp_core.retry).

Meta is replaced by aioresponses, or by an in-process aiohttp server where real connections
matter (keep-alive, timeouts). Waiting is a fake sleep that advances a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from yarl import URL

from tests.conftest import start_graph_stub
from whatsapp_core.errors import ErrorFamily, RecommendedAction, RetryScope
from whatsapp_core.graph_client import GraphClient, GraphError, SendResult
from whatsapp_core.masking import mask_phone
from whatsapp_core.retry import RetryPolicy

BASE = "https://graph.test"
PHONE_ID = "1234567890"
URL_ = f"{BASE}/v21.0/{PHONE_ID}/messages"
TOKEN = "EAAG-secret-token-never-logged"
TO = "+4915112345678"
PAYLOAD = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": TO,
    "type": "text",
    "text": {"body": "Hello"},
}
OK_BODY = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": TO, "wa_id": TO[1:]}],
    "messages": [{"id": "wamid.HBgLMTIzNDU2Nzg5MA=="}],
}


def graph_error(code: int, message: str = "boom", details: str = "why") -> dict:
    return {
        "error": {
            "message": f"(#{code}) {message}",
            "type": "OAuthException",
            "code": code,
            "error_subcode": 2655007,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AbCdEf123",
        }
    }


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client(fake_time):
    graph = GraphClient(BASE, rng=random.Random(7), sleep=fake_time.sleep, clock=fake_time)
    yield graph
    await graph.close()


@pytest.fixture
def meta():
    with aioresponses() as mocked:
        yield mocked


def calls(meta_mock, url: str = URL_) -> list:
    return meta_mock.requests.get(("POST", URL(url)), [])


# ---------------------------------------------------------------- success


async def test_success_returns_the_wamid_and_sends_the_payload_with_bearer_token(client, meta):
    meta.post(URL_, payload=OK_BODY)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result == SendResult("wamid.HBgLMTIzNDU2Nzg5MA==", None, 1, OK_BODY)
    assert result.ok
    (call,) = calls(meta)
    assert call.kwargs["json"] == PAYLOAD
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"


async def test_api_version_and_base_url_shape_the_endpoint(fake_time, meta):
    graph = GraphClient(f"{BASE}/", "v19.0", sleep=fake_time.sleep, clock=fake_time)
    meta.post(f"{BASE}/v19.0/{PHONE_ID}/messages", payload=OK_BODY)
    assert (await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)).ok
    await graph.close()


async def test_200_without_a_message_id_is_a_failure_that_is_not_retried(client, meta, fake_time):
    meta.post(URL_, payload={"messages": []}, repeat=True)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert not result.ok and result.attempts == 1 and fake_time.sleeps == []
    assert result.error.http_status == 200


# ---------------------------------------------------------------- Graph errors


async def test_throughput_limit_is_retried_then_succeeds(client, meta, fake_time):
    meta.post(URL_, status=400, payload=graph_error(130429, "Rate limit hit"))
    meta.post(URL_, payload=OK_BODY)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.ok and result.attempts == 2
    assert len(fake_time.sleeps) == 1 and 0 <= fake_time.sleeps[0] <= 0.5
    assert len(calls(meta)) == 2


async def test_outside_window_is_not_retried_and_carries_the_catalogue_record(
    client, meta, fake_time
):
    meta.post(
        URL_, status=400, payload=graph_error(131047, "Re-engagement message", "24h"), repeat=True
    )
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert not result.ok and result.attempts == 1 and fake_time.sleeps == []
    assert result.error == GraphError(
        code=131047,
        title="(#131047) Re-engagement message",
        details="24h",
        http_status=400,
        subcode=2655007,
        fbtrace_id="AbCdEf123",
        network=False,
    )
    assert result.error.info.family is ErrorFamily.WINDOW
    assert result.error.info.action is RecommendedAction.SEND_TEMPLATE
    assert result.wamid is None and result.raw["error"]["code"] == 131047


async def test_known_non_retryable_code_is_not_retried_even_on_a_5xx(client, meta):
    meta.post(URL_, status=500, payload=graph_error(131045, "Incorrect certificate"), repeat=True)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.attempts == 1 and result.error.code == 131045


async def test_pair_rate_limit_waits_in_the_contact_scope(client, meta, fake_time):
    meta.post(URL_, status=400, payload=graph_error(131056))
    meta.post(URL_, payload=OK_BODY)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.ok and result.attempts == 2
    assert 2.0 <= fake_time.sleeps[0] <= 4.0  # upper half of 4^1 s


async def test_flow_throttling_is_left_to_a_scheduler(client, meta, fake_time):
    meta.post(URL_, status=400, payload=graph_error(132069), repeat=True)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.attempts == 1 and result.error.info.retryable
    assert fake_time.sleeps == []


async def test_5xx_without_a_body_is_retried_until_success(client, meta):
    meta.post(URL_, status=503, body="<html>Service Unavailable</html>")
    meta.post(URL_, status=502, body="")
    meta.post(URL_, payload=OK_BODY)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.ok and result.attempts == 3


async def test_persistent_5xx_stops_at_max_attempts(client, meta, fake_time):
    meta.post(URL_, status=503, body="unavailable", repeat=True)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.attempts == 5 and len(fake_time.sleeps) == 4
    assert result.error.code is None and result.error.http_status == 503
    assert result.error.details == "unavailable" and result.raw is None


async def test_429_without_a_code_is_retried_but_other_4xx_are_not(client, meta):
    meta.post(URL_, status=429, body="slow down")
    meta.post(URL_, payload=OK_BODY)
    assert (await client.send_message(PHONE_ID, TOKEN, PAYLOAD)).attempts == 2
    meta.post(URL_, status=404, body="not found", repeat=True)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.attempts == 1 and result.error.http_status == 404


async def test_non_json_200_is_an_error_not_an_exception(client, meta):
    meta.post(URL_, status=200, body="<html>proxy</html>", content_type="text/html")
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert not result.ok and result.attempts == 1 and result.error.http_status == 200


# ---------------------------------------------------------------- network


@pytest.mark.parametrize(
    "exception",
    [
        asyncio.TimeoutError(),
        aiohttp.ClientConnectionError("connection refused"),
        aiohttp.ServerDisconnectedError(),
    ],
)
async def test_network_failures_are_retried_then_reported(client, meta, fake_time, exception):
    meta.post(URL_, exception=exception, repeat=True)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert not result.ok and result.attempts == 5 and len(fake_time.sleeps) == 4
    assert result.error.network is True
    assert result.error.code is None and result.error.http_status is None


async def test_network_failure_then_success(client, meta):
    meta.post(URL_, exception=aiohttp.ClientConnectionError("reset"))
    meta.post(URL_, payload=OK_BODY)
    result = await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert result.ok and result.attempts == 2


async def test_max_elapsed_bounds_the_retries(fake_time, meta):
    policy = RetryPolicy(max_attempts=100, base_delay=2.0, max_delay=8.0, max_elapsed=20.0)
    graph = GraphClient(
        BASE, retry=policy, rng=random.Random(1), sleep=fake_time.sleep, clock=fake_time
    )
    meta.post(URL_, status=503, body="", repeat=True)
    result = await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)
    await graph.close()
    assert sum(fake_time.sleeps) <= 20.0
    assert 2 < result.attempts < 100
    assert result.attempts == len(fake_time.sleeps) + 1


# ---------------------------------------------------------------- logs


async def test_logs_name_code_and_title_mask_the_phone_and_never_show_the_token(
    client, meta, caplog
):
    caplog.set_level(logging.DEBUG)
    meta.post(URL_, status=400, payload=graph_error(130429))
    meta.post(URL_, status=400, payload=graph_error(131047))
    await client.send_message(PHONE_ID, TOKEN, PAYLOAD)
    retry, final = [r for r in caplog.records if r.name == "whatsapp_core.graph_client"]
    meta.post(URL_, status=401, payload=graph_error(190, "Access token has expired"))
    assert not (await client.mark_read(PHONE_ID, TOKEN, "wamid.IN")).ok
    assert "130429" in retry.getMessage() and "Throughput limit reached" in retry.getMessage()
    assert "131047" in final.getMessage() and "Outside the 24-hour window" in final.getMessage()
    assert final.levelno == logging.WARNING
    assert "***5678" in caplog.text
    assert TO not in caplog.text and TO[1:] not in caplog.text
    assert TOKEN not in caplog.text and "Bearer" not in caplog.text


def test_mask_phone_keeps_the_last_four_characters():
    assert mask_phone("+16505551234") == "***1234"
    assert mask_phone("US.13491208655302741918") == "***1918"
    assert mask_phone("1234") == "***"
    assert mask_phone("") == "***"


# ---------------------------------------------------------------- mark as read


@pytest.mark.parametrize(
    ("typing", "extra"), [(False, {}), (True, {"typing_indicator": {"type": "text"}})]
)
async def test_mark_read_body(client, meta, typing, extra):
    meta.post(URL_, payload={"success": True})
    result = await client.mark_read(PHONE_ID, TOKEN, "wamid.IN", typing_indicator=typing)
    assert result.ok and result.wamid is None and result.raw == {"success": True}
    (call,) = calls(meta)
    assert call.kwargs["json"] == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN",
        **extra,
    }


# ---------------------------------------------------------------- session


async def test_one_session_is_created_lazily_and_reused(monkeypatch, fake_time, meta):
    created: list[aiohttp.ClientSession] = []

    real_session = aiohttp.ClientSession

    def counting_session(*args, **kwargs) -> aiohttp.ClientSession:
        created.append(real_session(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(aiohttp, "ClientSession", counting_session)
    graph = GraphClient(BASE, timeout=3.0, sleep=fake_time.sleep, clock=fake_time)
    assert created == []
    meta.post(URL_, payload=OK_BODY, repeat=True)
    await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)
    await graph.mark_read(PHONE_ID, TOKEN, "wamid.IN")
    await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert len(created) == 1
    session = created[0]
    assert session.timeout.total == 3.0
    assert session.connector.limit == 100
    await graph.close()
    assert session.closed
    await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)
    assert len(created) == 2
    await graph.close()


@pytest.fixture
async def local_meta():
    """A real HTTP server on localhost that answers like Meta and remembers client ports."""
    peers: list[object] = []
    delay = {"seconds": 0.0}
    release = asyncio.Event()
    handlers: set[asyncio.Task] = set()

    async def messages(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        handlers.add(asyncio.current_task())
        if delay["seconds"]:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(release.wait(), delay["seconds"])
        return web.json_response(OK_BODY)

    runner, base_url = await start_graph_stub(messages)
    yield base_url, peers, delay
    release.set()
    await asyncio.gather(*handlers, return_exceptions=True)
    await runner.cleanup()


async def test_connections_are_kept_alive_across_calls(local_meta, fake_time):
    base, peers, _ = local_meta
    graph = GraphClient(base, sleep=fake_time.sleep, clock=fake_time)
    for _ in range(3):
        assert (await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)).wamid
    await graph.close()
    assert len(peers) == 3 and len(set(peers)) == 1


async def test_a_real_timeout_becomes_a_network_error(local_meta, fake_time):
    base, peers, delay = local_meta
    delay["seconds"] = 1.0
    graph = GraphClient(
        base,
        timeout=0.05,
        retry=RetryPolicy(max_attempts=2),
        sleep=fake_time.sleep,
        clock=fake_time,
    )
    result = await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)
    await graph.close()
    assert result.error is not None and result.error.network and result.error.title == "Timeout"
    assert result.attempts == 2 and len(peers) == 2


async def test_connection_refused_is_a_network_error(fake_time):
    graph = GraphClient(
        "http://127.0.0.1:9",
        retry=RetryPolicy(max_attempts=1),
        sleep=fake_time.sleep,
        clock=fake_time,
    )
    result = await graph.send_message(PHONE_ID, TOKEN, PAYLOAD)
    await graph.close()
    assert result.error is not None and result.error.network and result.attempts == 1


# ---------------------------------------------------------------- retry policy


def test_backoff_is_full_jitter_under_a_doubling_cap():
    policy = RetryPolicy()
    rng = random.Random(3)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        draws = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in draws)
        assert max(draws) > cap * 0.8 and min(draws) < cap * 0.2


def test_pair_rate_backoff_uses_base_4_capped_by_max_delay():
    policy = RetryPolicy()
    rng = random.Random(3)
    first = [policy.delay(1, rng, RetryScope.CONTACT) for _ in range(100)]
    assert all(2.0 <= d <= 4.0 for d in first)
    later = [policy.delay(2, rng, RetryScope.CONTACT) for _ in range(100)]
    assert all(4.0 <= d <= 8.0 for d in later)
    assert policy.delay(10_000, rng, RetryScope.CONTACT) <= 8.0


def test_delays_are_deterministic_for_a_seeded_rng():
    policy = RetryPolicy()
    one = [policy.delay(a, random.Random(42)) for a in range(1, 6)]
    two = [policy.delay(a, random.Random(42)) for a in range(1, 6)]
    assert one == two


def test_policy_defaults_and_validation():
    assert RetryPolicy() == RetryPolicy(5, 0.5, 8.0, 30.0, 4.0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)
    with pytest.raises(ValueError):
        RetryPolicy().delay(0, random.Random())
