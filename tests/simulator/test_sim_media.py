"""Media: upload, metadata, download with bearer and 5-minute expiry, sends by media id,
inbound media with real bytes."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

import aiohttp

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJ"
    "RU5ErkJggg=="
)


async def upload(
    sim,
    data: bytes,
    mime: str | None = "image/png",
    *,
    product: str | None = "whatsapp",
    token: str | None = "TOKEN",
):
    form = aiohttp.FormData()
    if product is not None:
        form.add_field("messaging_product", product)
    if mime is not None:
        form.add_field("type", mime)
    form.add_field("file", data, filename="pic.png", content_type=mime or "image/png")
    return await sim.graph("POST", f"/v21.0/{sim.phone_number_id}/media", data=form, token=token)


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_upload_metadata_and_download(sim):
    status, body = await upload(sim, PNG)
    assert status == 200, body
    media_id = body["id"]
    assert media_id.isdigit()
    status, meta = await sim.graph("GET", f"/v21.0/{media_id}")
    assert status == 200
    assert meta["messaging_product"] == "whatsapp"
    assert meta["mime_type"] == "image/png"
    assert meta["file_size"] == len(PNG)
    assert meta["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert meta["id"] == media_id
    assert meta["url"].startswith(str(sim.http.make_url("/")))  # absolute, on the simulator
    status, data = await sim.graph("GET", local(meta["url"]))
    assert (status, data) == (200, PNG)


async def test_download_requires_bearer(sim):
    _, body = await upload(sim, PNG)
    _, meta = await sim.graph("GET", f"/v21.0/{body['id']}")
    status, error = await sim.graph("GET", local(meta["url"]), token=None)
    assert status == 401
    assert error["error"]["code"] == 190
    status, _ = await sim.graph("GET", local(meta["url"]), token="WRONG")
    assert status == 401


async def test_download_url_expires_after_five_simulated_minutes(sim):
    _, body = await upload(sim, PNG)
    _, meta = await sim.graph("GET", f"/v21.0/{body['id']}")
    await sim.advance(299)
    assert (await sim.graph("GET", local(meta["url"])))[0] == 200
    await sim.advance(2)
    assert (await sim.graph("GET", local(meta["url"])))[0] == 404
    _, fresh = await sim.graph("GET", f"/v21.0/{body['id']}")
    assert (await sim.graph("GET", local(fresh["url"])))[0] == 200
    tampered = local(fresh["url"]).replace("hash=", "hash=x")
    assert (await sim.graph("GET", tampered))[0] == 404


async def test_unknown_media_id(sim):
    status, body = await sim.graph("GET", "/v21.0/1234567890")
    assert status == 400
    assert body["error"]["code"] == 100


async def test_upload_errors(sim):
    status, body = await upload(sim, b"GIF89a", "image/gif")
    assert status == 400 and body["error"]["code"] == 131053
    assert "image/gif" in body["error"]["error_data"]["details"]
    status, body = await upload(sim, b"x" * (500 * 1024 + 1), "image/webp")
    assert status == 400 and body["error"]["code"] == 131053
    assert "sticker" in body["error"]["error_data"]["details"]
    status, body = await upload(sim, PNG, None)
    assert status == 400 and body["error"]["code"] == 131008
    status, body = await upload(sim, PNG, product=None)
    assert status == 400 and body["error"]["code"] == 131008
    status, body = await upload(sim, PNG, token=None)
    assert status == 401
    status, body = await sim.graph(
        "POST", f"/v21.0/{sim.phone_number_id}/media", json={"file": "x"}
    )
    assert status == 400 and body["error"]["code"] == 100


async def test_send_by_uploaded_media_id(sim):
    await sim.inbound(type="text", text="send me the picture")
    _, body = await upload(sim, PNG)
    wamid = await sim.send_ok({"type": "image", "image": {"id": body["id"], "caption": "Here"}})
    statuses = await sim.sink.wait_statuses(wamid, 3)
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    await sim.advance(30 * 24 * 3600)  # uploaded media ids live 30 days
    status, error = await sim.send({"type": "image", "image": {"id": body["id"]}})
    assert status == 400 and error["error"]["code"] == 100


async def test_inbound_media_has_real_downloadable_bytes(sim):
    played = await sim.inbound(type="image", caption="Taj Mahal")
    delivery = sim.sink.deliveries[-1]
    (message,) = delivery.messages
    image = message["image"]
    assert message["type"] == "image"
    assert image["caption"] == "Taj Mahal"
    assert image["mime_type"] == "image/jpeg"
    assert image["id"] == played["media_id"]
    _, meta = await sim.graph("GET", f"/v21.0/{image['id']}")
    status, data = await sim.graph("GET", local(meta["url"]))
    assert status == 200
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG
    assert base64.b64encode(hashlib.sha256(data).digest()).decode() == image["sha256"]
    assert (await sim.graph("GET", local(image["url"])))[0] == 200


async def test_inbound_media_with_given_content(sim):
    content = b"%PDF-1.4 test"
    played = await sim.inbound(
        type="document",
        filename="receipt.pdf",
        caption="my receipt",
        content_base64=base64.b64encode(content).decode(),
    )
    document = sim.sink.last_messages[0]["document"]
    assert document["filename"] == "receipt.pdf"
    _, meta = await sim.graph("GET", f"/v21.0/{played['media_id']}")
    assert meta["file_size"] == len(content)
    assert (await sim.graph("GET", local(meta["url"])))[1] == content
    await sim.inbound(type="audio", voice=True)
    audio = sim.sink.last_messages[0]["audio"]
    assert audio["voice"] is True
    assert audio["mime_type"] == "audio/ogg; codecs=opus"
