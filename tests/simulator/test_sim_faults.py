"""Fault injection: throttling, 5xx, dropped connections, latency, duplicated and reordered
webhooks; bounded counts, reset, stats."""

from __future__ import annotations

import time

import aiohttp
import pytest

TEXT = {"type": "text", "text": {"body": "hi"}}


async def set_faults(sim, **faults) -> dict:
    status, body = await sim.control("POST", "/_sim/faults", faults)
    assert status == 200, body
    return body


@pytest.mark.parametrize("code", [130429, 131056, 80007])
async def test_throttle_answers_code_then_recovers(sim, code: int):
    await sim.inbound(type="text", text="hi")
    await set_faults(sim, throttle={"count": 2, "code": code})
    for _ in range(2):
        status, body = await sim.send(TEXT)
        assert status == 400
        assert body["error"]["code"] == code
        assert body["error"]["message"].startswith(f"(#{code})")
        assert body["error"]["error_data"]["details"]
    status, body = await sim.send(TEXT)
    assert status == 200, body
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["faults_served"]["throttle"] == 2
    assert stats["sends_accepted"] == 1
    assert stats["rejected"] == {}


async def test_throttle_can_use_http_429(sim):
    await set_faults(sim, throttle={"count": 1, "code": 130429, "http_status": 429})
    status, body = await sim.send(TEXT)
    assert status == 429 and body["error"]["code"] == 130429


async def test_throttle_applies_after_the_bearer_check(sim):
    await set_faults(sim, throttle={"count": 1, "code": 130429})
    status, _ = await sim.send(TEXT, token="WRONG")
    assert status == 401
    status, body = await sim.send(TEXT)
    assert body["error"]["code"] == 130429


@pytest.mark.parametrize(("http_status", "code"), [(500, 131000), (503, 2)])
async def test_server_errors(sim, http_status: int, code: int):
    await set_faults(sim, server_errors={"count": 2, "status": http_status})
    for _ in range(2):
        status, body = await sim.send(TEXT)
        assert status == http_status
        assert body["error"]["code"] == code
    status, _ = await sim.send(TEXT)
    assert status == 200
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["faults_served"]["server_error"] == 2


async def test_dropped_connections(sim):
    await set_faults(sim, drop_connections={"count": 1})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await sim.send(TEXT)
    status, _ = await sim.send(TEXT)
    assert status == 200
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["faults_served"]["drop_connection"] == 1


async def test_latency_delays_graph_but_not_control(sim):
    await set_faults(sim, latency_ms=200)
    started = time.monotonic()
    status, _ = await sim.graph("GET", f"/v21.0/{sim.waba_id}/message_templates")
    assert status == 200
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    await sim.control("GET", "/_sim/stats")
    assert time.monotonic() - started < 0.2
    await sim.control("DELETE", "/_sim/faults")
    started = time.monotonic()
    await sim.graph("GET", f"/v21.0/{sim.waba_id}/message_templates")
    assert time.monotonic() - started < 0.2


async def test_duplicated_webhooks(sim):
    await set_faults(sim, webhooks={"duplicate": True})
    played = await sim.inbound(type="text", text="hi")
    assert [d["status"] for d in played["deliveries"]] == [200, 200]
    inbound_ids = [m["id"] for d in sim.sink.deliveries for m in d.messages]
    assert inbound_ids == [played["wamid"], played["wamid"]]
    wamid = await sim.send_text()
    statuses = await sim.sink.wait_statuses(wamid, 6)
    assert [s["status"] for s in statuses] == [
        "sent",
        "sent",
        "delivered",
        "delivered",
        "read",
        "read",
    ]


async def test_reordered_status_webhooks(sim):
    await set_faults(sim, webhooks={"reorder": True})
    await sim.inbound(type="text", text="hi")
    wamid = await sim.send_text()
    statuses = await sim.sink.wait_statuses(wamid, 3)
    assert [s["status"] for s in statuses] == ["read", "delivered", "sent"]
    timestamps = [int(s["timestamp"]) for s in statuses]
    assert timestamps == sorted(timestamps, reverse=True)
    assert (await sim.message(wamid))["status"] == "read"


async def test_faults_reset_and_validation(sim):
    active = await set_faults(
        sim,
        latency_ms=5,
        throttle={"count": 3, "code": 131056},
        server_errors={"count": 1, "status": 503},
        drop_connections={"count": 4},
        webhooks={"duplicate": True},
    )
    assert active["throttle"] == {"remaining": 3, "code": 131056, "http_status": 400}
    assert active["drop_connections"] == {"remaining": 4}
    status, cleared = await sim.control("DELETE", "/_sim/faults")
    assert status == 200
    assert cleared["throttle"] is None and cleared["latency_ms"] == 0
    assert cleared["webhooks"] == {"duplicate": False, "reorder": False}
    for bad in (
        {"throttle": {"count": 1, "code": 400}},
        {"latency_ms": -1},
        {"server_errors": {"count": 1, "status": 502}},
        {"explode": True},
        {"drop_connections": {"count": "many"}},
    ):
        status, body = await sim.control("POST", "/_sim/faults", bad)
        assert status == 400, bad
        assert body["error"]
    _, unchanged = await sim.control("GET", "/_sim/faults")
    assert unchanged == cleared


async def test_reset_clears_state(sim):
    await sim.inbound(type="text", text="hi")
    await sim.send_text()
    await sim.advance(1000)
    await set_faults(sim, throttle={"count": 5, "code": 130429})
    status, _ = await sim.control("POST", "/_sim/reset")
    assert status == 200
    assert await sim.messages() == []
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["sends_accepted"] == 0
    _, clock = await sim.control("GET", "/_sim/clock")
    assert abs(clock["now"] - time.time()) < 5
    wamid = await sim.send_text()  # no throttle, and the window is gone again
    (failed,) = await sim.sink.wait_statuses(wamid, 1)
    assert failed["errors"][0]["code"] == 131047
