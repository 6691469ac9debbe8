"""Media through the whole channel over real HTTP: the Sanic server with the WhatsApp channel
and the Cloud API simulator, both on loopback. Inbound files are fetched after the ack
(a slow Graph API never delays it); replies send local files by uploaded id."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from simulator.app import create_app
from simulator.config import SimulatorConfig
from simulator.engine import CloudApiSimulator
from simulator.process import free_port
from simulator.web_common import SIMULATOR
from tests.http.conftest import SECRET, ChannelServer, credentials, start_server, stop_server
from tests.http.test_webhook_http import text_message, webhook
from whatsapp_core.media_records import DownloadState, FailureReason

TOKEN = "test-access-token"
AGENT_TOKEN = "media-agent-token"
CONTACT = "16505551234"
PNG = b"\x89PNG\r\n\x1a\n" + b"a photo of the broken part " * 40
PDF = b"%PDF-1.1\n" + b"receipt " * 300
RESPONSES = {
    "receipt please": {"text": "Here it is", "attachment": {"path": "receipts/r1.pdf"}},
    "steal": {"attachment": {"path": "../secret.pdf"}},
}


@dataclass
class Setup:
    channel: ChannelServer
    sim: CloudApiSimulator
    sim_url: str
    session: aiohttp.ClientSession

    @property
    def runtime(self):
        return self.channel.channel._runtime

    async def inbound(self, **spec) -> dict:
        async with self.session.post(
            f"{self.sim_url}/_sim/inbound", json={"from": CONTACT, **spec}
        ) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def settled(self) -> None:
        await self.channel.settle()
        await self.runtime.media.wait_idle()

    def sent(self) -> list:
        return self.sim.state.messages(CONTACT, None)


@pytest.fixture
async def setup(tmp_path):
    sim_port = free_port()

    async def answer(message) -> None:
        response = RESPONSES.get(message.text)
        if response is not None:
            await message.output_channel.send_response(message.sender_id, response)

    creds = credentials(
        tmp_path,
        agent_token=AGENT_TOKEN,
        access_token=TOKEN,
        api_base_url=f"http://127.0.0.1:{sim_port}",
        media_dir=str(tmp_path / "media"),
        media_upload_dir=str(tmp_path / "outbox"),
    )
    channel, server = await start_server(creds, answer)
    app = create_app(
        SimulatorConfig(
            webhook_url=f"{channel.url}/webhooks/whatsapp/webhook",
            app_secret=SECRET,
            access_token=TOKEN,
            status_delay_seconds=0.0,
        )
    )
    sim_server = TestServer(app, host="127.0.0.1", port=sim_port)
    await sim_server.start_server()
    (tmp_path / "outbox" / "receipts").mkdir(parents=True)
    (tmp_path / "outbox" / "receipts" / "r1.pdf").write_bytes(PDF)
    (tmp_path / "secret.pdf").write_bytes(b"%PDF not for contacts")
    session = aiohttp.ClientSession()
    yield Setup(channel, app[SIMULATOR], f"http://127.0.0.1:{sim_port}", session)
    await session.close()
    await stop_server(channel, server)
    await sim_server.close()


def last_turn_download(setup: Setup) -> dict:
    return setup.channel.turns[-1].metadata["whatsapp"]["media"]["download"]


async def test_a_contact_s_photo_is_kept_with_its_hash(setup, tmp_path):
    played = await setup.inbound(
        type="image", mime_type="image/png", content_base64=base64.b64encode(PNG).decode()
    )
    assert played["webhook_status"] == 200
    await setup.settled()
    record = await setup.runtime.media.record_for(played["wamid"])
    assert record.state is DownloadState.READY
    assert record.path.parent == (tmp_path / "media").resolve()
    assert record.path.read_bytes() == PNG
    assert record.sha256 == hashlib.sha256(PNG).hexdigest()
    assert last_turn_download(setup)["state"] in ("downloading", "ready")


async def test_a_slow_graph_api_never_delays_the_ack(setup):
    setup.sim.faults.apply({"latency_ms": 2000})
    started = time.monotonic()
    played = await setup.inbound(type="image", mime_type="image/png",
                                 content_base64=base64.b64encode(PNG).decode())
    acked_in = time.monotonic() - started
    assert played["webhook_status"] == 200
    assert acked_in < 1.0
    await setup.channel.settle()
    assert last_turn_download(setup) == {"state": "downloading", "reason": None}
    setup.sim.faults.clear()
    await setup.settled()
    record = await setup.runtime.media.record_for(played["wamid"])
    assert record.state is DownloadState.READY


async def test_a_failed_download_still_gets_its_turn(setup):
    digest = base64.b64encode(hashlib.sha256(b"gone").digest()).decode()
    message = {"from": CONTACT, "id": "wamid.unknown-media", "timestamp": str(int(time.time())),
               "type": "image", "image": {"id": "424242", "mime_type": "image/jpeg",
                                          "sha256": digest}}
    played = await setup.inbound(raw=message)
    assert played["webhook_status"] == 200
    await setup.settled()
    assert [turn.message_id for turn in setup.channel.turns] == ["wamid.unknown-media"]
    record = await setup.runtime.media.record_for("wamid.unknown-media")
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.NOT_FOUND)


async def test_a_local_file_is_uploaded_once_and_sent_by_id(setup):
    for _ in range(2):
        await setup.inbound(type="text", text="receipt please")
        await setup.settled()
    sent = setup.sent()
    assert [m.type for m in sent] == ["document", "document"]
    ids = {m.payload["document"]["id"] for m in sent}
    assert len(ids) == 1  # the second send reused the upload
    (media_id,) = ids
    uploaded = setup.sim.media.get(media_id, setup.sim.clock.now())
    assert (uploaded.data, uploaded.mime_type) == (PDF, "application/pdf")
    assert sent[0].payload["document"]["caption"] == "Here it is"
    assert sent[0].payload["document"]["filename"] == "r1.pdf"
    assert "path" not in sent[0].payload["document"]
    assert setup.sim.stats.requests["graph.media_upload"] == 1


async def test_a_file_outside_the_upload_directory_is_refused(setup):
    await setup.inbound(type="text", text="steal")
    await setup.settled()
    assert setup.sent() == []
    assert setup.sim.stats.requests["graph.media_upload"] == 0
    (record,) = await setup.runtime.store.outbound_for(CONTACT)
    assert (record.state, record.error_title) == ("failed", "local file refused")
    assert "outside media_upload_dir" in record.error_details


async def test_a_media_store_that_cannot_be_loaded_is_answered_503(tmp_path, caplog):
    channel, server = await start_server(
        credentials(tmp_path, media_store="no_such_package.s3:Store")
    )
    try:
        status, _ = await channel.post(webhook(text_message("wamid.s1", "hi")))
    finally:
        await stop_server(channel, server)
    assert status == 503  # Meta retries; the log names the problem
    assert "no_such_package.s3:Store" in caplog.text


async def agent_get(setup: Setup, path: str, token: str | None = AGENT_TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with setup.session.get(
        f"{setup.channel.url}/webhooks/whatsapp/agent/api/{path}", headers=headers
    ) as response:
        return response.status, dict(response.headers), await response.read()


async def test_agents_open_stored_files_with_safe_headers(setup):
    photo = await setup.inbound(
        type="image", mime_type="image/png", content_base64=base64.b64encode(PNG).decode()
    )
    html = b"<html><script>window.__pwned=1</script></html>"
    document = await setup.inbound(
        type="document", mime_type="text/html", filename="../../evil page.html",
        content_base64=base64.b64encode(html).decode(),
    )
    await setup.settled()
    assert (await agent_get(setup, f"media/{photo['wamid']}", token=None))[0] == 401
    assert (await agent_get(setup, f"media/{photo['wamid']}", token="wrong"))[0] == 401
    status, headers, body = await agent_get(setup, f"media/{photo['wamid']}")
    assert (status, body, headers["Content-Type"]) == (200, PNG, "image/png")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == "inline"
    status, headers, body = await agent_get(setup, f"media/{document['wamid']}")
    assert status == 200 and body == html
    assert headers["Content-Disposition"] == 'attachment; filename="evil_page.html"'
    assert (await agent_get(setup, "media/wamid.unknown"))[0] == 404
