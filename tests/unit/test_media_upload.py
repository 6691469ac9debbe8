"""Outbound local files (whatsapp_core.media_upload, and the ``path`` shapes of
whatsapp_core.outbound) against the Cloud API simulator in-process on loopback: upload,
id reuse, and files outside ``media_upload_dir`` refused."""

from __future__ import annotations

import os

import pytest
from aiohttp.test_utils import TestServer

from simulator.app import create_app
from simulator.config import SimulatorConfig
from simulator.web_common import SIMULATOR
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.media_upload import (
    REFUSED_TITLE,
    REUSE_SECONDS,
    LocalMediaUploader,
    local_path_of,
)
from whatsapp_core.outbound import InvalidOutboundMessage, OutboundKind, build_messages
from whatsapp_core.retry import RetryPolicy
from whatsapp_core.store import WhatsAppStore

TOKEN = "TOKEN"
PHONE = "106540352242922"
PDF = b"%PDF-1.1\n" + b"receipt " * 300
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sim():
    app = create_app(SimulatorConfig(webhook_url=None, access_token=TOKEN))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), app[SIMULATOR]
    await server.close()


@pytest.fixture
async def uploader(sim, tmp_path):
    url, _engine = sim
    store = WhatsAppStore(f"sqlite:///{tmp_path / 'channel.db'}", instance_id="test")
    graph = GraphClient(url, retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    uploader = LocalMediaUploader(store, graph, tmp_path / "outbox", clock=Clock())
    (uploader.root / "receipts").mkdir()
    (uploader.root / "receipts" / "r1.pdf").write_bytes(PDF)
    (uploader.root / "logo.png").write_bytes(PNG)
    yield uploader
    await graph.close()
    store.close()


def document(path: str, **extra) -> dict:
    return {"messaging_product": "whatsapp", "to": "16505551234", "type": "document",
            "document": {"path": path, **extra}}


def uploads(sim) -> int:
    return sim[1].stats.requests["graph.media_upload"]


async def test_a_local_file_is_uploaded_and_named_by_id(sim, uploader):
    prepared = await uploader.prepare(PHONE, TOKEN, document("receipts/r1.pdf", caption="Yours"))
    content = prepared.payload["document"]
    assert prepared.error_title is None
    assert set(content) == {"id", "caption", "filename"}
    assert (content["caption"], content["filename"]) == ("Yours", "r1.pdf")
    item = sim[1].media.get(content["id"], sim[1].clock.now())
    assert (item.data, item.mime_type) == (PDF, "application/pdf")


async def test_the_uploaded_id_is_reused_until_meta_would_forget_it(sim, uploader):
    first = await uploader.prepare(PHONE, TOKEN, document("receipts/r1.pdf"))
    absolute = str(uploader.root / "receipts" / "r1.pdf")
    again = await uploader.prepare(PHONE, TOKEN, document(absolute, filename="Receipt.pdf"))
    assert again.payload["document"] == {"id": first.payload["document"]["id"],
                                         "filename": "Receipt.pdf"}
    assert uploads(sim) == 1
    uploader._clock.now += REUSE_SECONDS + 1
    later = await uploader.prepare(PHONE, TOKEN, document("receipts/r1.pdf"))
    assert later.payload["document"]["id"] != first.payload["document"]["id"]
    assert uploads(sim) == 2


async def test_a_message_without_a_local_file_is_left_as_it_is(sim, uploader):
    payload = {"type": "image", "image": {"link": "https://example.com/a.png"}}
    assert (await uploader.prepare(PHONE, TOKEN, payload)).payload is payload
    assert local_path_of({"type": "text", "text": {"body": "path"}}) is None
    assert uploads(sim) == 0


def outside_link(uploader) -> str:
    secret = uploader.root.parent / "secret.pdf"
    secret.write_bytes(b"%PDF secret")
    os.symlink(secret, uploader.root / "link.pdf")
    return "link.pdf"


def linked_directory(uploader) -> str:
    elsewhere = uploader.root.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.pdf").write_bytes(b"%PDF elsewhere")
    os.symlink(elsewhere, uploader.root / "docs")
    return "docs/x.pdf"


def outside_absolute(uploader) -> str:
    (uploader.root.parent / "other.pdf").write_bytes(PDF)
    return str(uploader.root.parent / "other.pdf")


def empty_file(uploader) -> str:
    (uploader.root / "empty.pdf").write_bytes(b"")
    return "empty.pdf"


def a_directory(uploader) -> str:
    (uploader.root / "folder.pdf").mkdir()
    return "folder.pdf"


@pytest.mark.parametrize(
    ("make_path", "reason"),
    [
        (lambda u: "../secret.pdf", "outside media_upload_dir"),
        (lambda u: "receipts/../../secret.pdf", "outside media_upload_dir"),
        (lambda u: "/etc/passwd.pdf", "outside media_upload_dir"),
        (outside_absolute, "outside media_upload_dir"),
        (lambda u: f"{u.root}/../secret.pdf", "outside media_upload_dir"),
        (outside_link, "symbolic link"),
        (linked_directory, "symbolic link"),
        (lambda u: "missing.pdf", "does not exist"),
        (lambda u: "receipts/r1.exe", "does not take '.exe'"),
        (empty_file, "is empty"),
        (a_directory, "not a regular file"),
        (lambda u: ".", "outside media_upload_dir"),
    ],
)
async def test_files_outside_the_upload_directory_are_refused(sim, uploader, make_path, reason):
    prepared = await uploader.prepare(PHONE, TOKEN, document(make_path(uploader)))
    assert prepared.payload is None
    assert prepared.error_title == REFUSED_TITLE
    assert reason in prepared.error_details
    assert uploads(sim) == 0


async def test_a_failed_upload_gives_meta_s_error(sim, uploader):
    prepared = await uploader.prepare(PHONE, "wrong-token", document("receipts/r1.pdf"))
    assert prepared.payload is None
    assert prepared.error_code == 190


# ---------------------------------------------------------------- response shapes


def test_an_attachment_names_a_local_file_by_path():
    (message,) = build_messages(
        {"text": "Your receipt", "attachment": {"path": "receipts/r1.pdf", "filename": "R.pdf"}}
    )
    assert message.kind is OutboundKind.DOCUMENT
    assert message.body == {
        "type": "document",
        "document": {"path": "receipts/r1.pdf", "caption": "Your receipt", "filename": "R.pdf"},
    }
    (image,) = build_messages({"attachment": {"path": "logo.png", "type": "image"}})
    assert image.body == {"type": "image", "image": {"path": "logo.png"}}


def test_a_custom_media_message_names_a_local_file_by_path():
    (message,) = build_messages(
        {"custom": {"whatsapp": {"type": "image", "image": {"path": "logo.png"}}}}
    )
    assert message.kind is OutboundKind.IMAGE
    assert local_path_of(message.to_payload("16505551234")) == "logo.png"


@pytest.mark.parametrize(
    ("response", "field"),
    [
        ({"attachment": {"path": "a.pdf", "url": "https://x.test/a.pdf"}}, "attachment"),
        ({"attachment": {"path": 7}}, "attachment.path"),
        ({"attachment": {"path": "a\x00.pdf"}}, "attachment.path"),
        ({"custom": {"type": "image", "image": {"path": "a.png", "id": "1"}}}, "custom.image"),
        (
            {"custom": {"type": "interactive", "interactive": {
                "type": "button", "header": {"type": "image", "image": {"path": "a.png"}},
                "body": {"text": "b"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "1", "title": "t"}}]},
            }}},
            "custom.interactive.header.image",
        ),
        (
            {"custom": {"type": "interactive", "interactive": {
                "type": "button", "body": {"text": "b"},
                "header": {"type": "image", "image": {"path": "a.png", "link": "https://x.test/a"}},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "1", "title": "t"}}]},
            }}},
            "custom.interactive.header.image.path",
        ),
    ],
)
def test_path_shapes_that_cannot_work_are_invalid(response, field):
    with pytest.raises(InvalidOutboundMessage) as raised:
        build_messages(response)
    assert raised.value.field == field
