"""Inbound media end to end: a contact's photo through the simulator reaches `rasa run`, the
bot answers, and the file is kept in the media directory with the hash Meta gave."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest

from tests.e2e.conftest import REPO_ROOT
from whatsapp_core.media_records import DownloadState, media_for_message
from whatsapp_core.store import create_engine

pytestmark = pytest.mark.e2e


def wait_for_file(db_path, message_id: str, timeout: float = 15.0):
    engine = create_engine(f"sqlite:///{db_path}")  # the action server's view of the store
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as connection:
                record = media_for_message(connection, message_id)
            if record is not None and record.state is not DownloadState.DOWNLOADING:
                return record
            assert time.monotonic() < deadline, f"still {record}"
            time.sleep(0.1)
    finally:
        engine.dispose()


def test_a_contact_s_photo_is_answered_and_kept(bot):
    contact = "393331000301"
    photo = b"\x89PNG\r\n\x1a\n" + f"e2e photo {time.time_ns()}".encode() * 20
    played = bot.client.inbound_media(
        contact, "image", mime_type="image/png", content_base64=base64.b64encode(photo).decode()
    )
    (reply,) = bot.client.wait_for_messages(contact, 1)
    assert reply["payload"]["text"]["body"] == "Thanks, I've received your photo."

    record = wait_for_file(bot.store_path, played["wamid"])
    digest = hashlib.sha256(photo).hexdigest()
    assert record.state is DownloadState.READY, record
    assert record.sha256 == digest
    assert record.path == (REPO_ROOT / "var" / "media" / f"{digest}.png").resolve()
    assert hashlib.sha256(record.path.read_bytes()).hexdigest() == digest
