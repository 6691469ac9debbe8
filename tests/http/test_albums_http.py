"""Albums: photos sent together become one turn; the ack is never delayed."""

from __future__ import annotations

import asyncio
import time

from tests.http.conftest import credentials, start_server, stop_server
from tests.http.test_webhook_http import webhook


def image(wamid: str, ts: int, caption: str | None = None, sender: str = "16505551234") -> dict:
    media = {"id": f"media-{wamid}", "mime_type": "image/jpeg", "sha256": "x"}
    if caption:
        media["caption"] = caption
    return {"from": sender, "id": wamid, "timestamp": str(ts), "type": "image", "image": media}


async def test_three_photos_sent_together_are_one_turn_with_the_caption(tmp_path):
    running, server = await start_server(credentials(tmp_path, album_window_seconds=0.5))
    try:
        now = int(time.time())
        started = time.monotonic()
        for n, caption in enumerate([None, "my broken parcel", None]):
            status, _ = await running.post(webhook(image(f"wamid.a{n}", now, caption)))
            assert status == 200
        assert time.monotonic() - started < 0.5  # acks never wait for the album
        await asyncio.sleep(0.8)
        await running.settle()
        (turn,) = running.turns
        assert turn.text == "my broken parcel"
        album = turn.metadata["whatsapp"]["album"]
        assert [part["message_id"] for part in album] == ["wamid.a0", "wamid.a1", "wamid.a2"]
        store = running.channel._runtime.store
        assert {await store.inbox_state(f"wamid.a{n}") for n in range(3)} == {"done"}
    finally:
        await stop_server(running, server)


async def test_photos_far_apart_or_from_others_are_separate_turns(tmp_path):
    running, server = await start_server(credentials(tmp_path, album_window_seconds=0.3))
    try:
        now = int(time.time())
        await running.post(webhook(image("wamid.b0", now - 60)))
        await running.post(webhook(image("wamid.b1", now)))
        await running.post(webhook(image("wamid.b2", now, sender="393330000000")))
        await asyncio.sleep(0.6)
        await running.settle()
        texts = sorted((t.sender_id, t.text) for t in running.turns)
        assert len(texts) == 3
        assert all(text == '/whatsapp_media{"media_type":"image"}' for _, text in texts)
    finally:
        await stop_server(running, server)
