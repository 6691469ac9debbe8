"""``POST /_sim/config``: switching the webhook URL of a running simulator."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.simulator.conftest import WebhookSink


async def test_webhooks_follow_the_new_url(sim):
    other = WebhookSink()
    app = web.Application()
    app.router.add_post("/webhook", other.handle_post)
    server = TestServer(app)
    await server.start_server()
    try:
        other_url = str(server.make_url("/webhook"))
        status, body = await sim.control("POST", "/_sim/config", {"webhook_url": other_url})
        assert (status, body) == (200, {"webhook_url": other_url})

        before = len(sim.sink.deliveries)
        await sim.inbound(type="text", text="hi")
        wamid = await sim.send_text()
        await other.wait_statuses(wamid, 3)
        await sim.idle()
        assert len(sim.sink.deliveries) == before
        assert [m["text"]["body"] for d in other.deliveries for m in d.messages] == ["hi"]

        status, body = await sim.control("POST", "/_sim/config", {"webhook_url": sim.sink.url})
        assert (status, body) == (200, {"webhook_url": sim.sink.url})
        wamid = await sim.send_text()
        await sim.sink.wait_statuses(wamid, 3)
        await sim.idle()
        assert other.statuses(wamid) == []
    finally:
        await server.close()


async def test_empty_url_disables_delivery(sim):
    status, body = await sim.control("POST", "/_sim/config", {"webhook_url": ""})
    assert (status, body) == (200, {"webhook_url": None})
    status, body = await sim.control("POST", "/_sim/webhook", {"object": "x"})
    assert status == 200
    assert body["webhook_status"] is None
    assert sim.sink.deliveries == []


async def test_bad_config_requests(sim):
    for payload in ({}, {"webhook_url": 5}, {"webhook_url": "ftp://x"},
                    {"webhook_url": sim.sink.url, "other": 1}, ["x"]):
        status, body = await sim.control("POST", "/_sim/config", payload)
        assert status == 400, payload
        assert "error" in body
    assert sim.engine.config.webhook_url == sim.sink.url
