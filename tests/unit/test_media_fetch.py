"""Inbound media fetching (whatsapp_core.media_fetch) against the Cloud API simulator,
in-process on loopback: look-up, download, verification, expiry, failures, recovery,
bounded concurrency, and the state a turn sees."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass, replace

import pytest
from aiohttp.test_utils import TestServer

from simulator.app import create_app
from simulator.config import SimulatorConfig
from simulator.engine import CloudApiSimulator
from simulator.process import free_port
from simulator.web_common import SIMULATOR
from whatsapp_core.albums import merge_album
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.media_fetch import (
    HashMismatch,
    MediaFetcher,
    MediaTooLarge,
    parse_sha256,
    verified,
)
from whatsapp_core.media_records import (
    DownloadState,
    FailureReason,
    insert_job,
    media_for_message,
    media_jobs,
)
from whatsapp_core.media_store import LocalMediaStore, StoredMedia
from whatsapp_core.retry import RetryPolicy
from whatsapp_core.schema import media
from whatsapp_core.store import InboxItem, WhatsAppStore, create_engine

TOKEN = "TOKEN"
PHONE = "106540352242922"
CONTACT = "16505551234"
JPEG = b"\xff\xd8\xff\xe0" + b"pixels " * 500
PDF = b"%PDF-1.1\n" + b"receipt " * 300
FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01, max_elapsed=1.0)


@dataclass
class Sim:
    server: TestServer
    engine: CloudApiSimulator

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def add(self, data: bytes, mime_type: str = "image/jpeg") -> str:
        now = self.engine.clock.now()
        return self.engine.media.add(data, mime_type, now=now, ttl_seconds=3600).id

    def requests(self, route: str) -> int:
        return self.engine.stats.requests[route]


@pytest.fixture
async def sim():
    app = create_app(SimulatorConfig(webhook_url=None, access_token=TOKEN))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Sim(server, app[SIMULATOR])
    await server.close()


@pytest.fixture
async def store(tmp_path):
    store = WhatsAppStore(f"sqlite:///{tmp_path / 'channel.db'}", instance_id="test")
    yield store
    store.close()


@pytest.fixture
def media_store(tmp_path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "media")


@pytest.fixture
async def make_fetcher(sim, store, media_store):
    made: list[tuple[MediaFetcher, GraphClient]] = []

    def make(graph: GraphClient | None = None, **options) -> MediaFetcher:
        graph = graph or GraphClient(sim.url, retry=FAST_RETRY)
        options.setdefault("max_bytes", 10_000_000)
        options.setdefault("access_token_for", lambda _phone: TOKEN)
        fetcher = MediaFetcher(store, graph, options.pop("media_store", media_store), **options)
        made.append((fetcher, graph))
        return fetcher

    yield make
    for fetcher, graph in made:
        await fetcher.stop()
        await graph.close()


def b64_sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def media_item(
    message_id: str,
    media_id: str,
    data: bytes = JPEG,
    *,
    media_type: str = "image",
    mime_type: str = "image/jpeg",
    sha256: str | None = None,
) -> InboxItem:
    content = {"id": media_id, "mime_type": mime_type, "sha256": sha256 or b64_sha(data)}
    if media_type == "document":
        content["filename"] = "../../etc/passwd"
    return InboxItem(
        message_id=message_id,
        conversation_id=CONTACT,
        phone_number_id=PHONE,
        recipient=CONTACT,
        wa_timestamp=1_700_000_000,
        opens_window=True,
        text=f'/whatsapp_media{{"media_type": "{media_type}"}}',
        metadata={"whatsapp": {"type": media_type, "message_id": message_id, "media": content}},
    )


async def fetch(fetcher: MediaFetcher, store: WhatsAppStore, item: InboxItem):
    fetcher.submit([item])
    await fetcher.wait_idle()
    return await store.run(lambda c: media_for_message(c, item.message_id))


# ---------------------------------------------------------------- downloads


async def test_a_file_is_downloaded_verified_and_kept_under_its_hash(
    sim, store, media_store, make_fetcher
):
    item = media_item("wamid.1", sim.add(PDF, "application/pdf"), PDF, media_type="document",
                      mime_type="application/pdf")
    record = await fetch(make_fetcher(), store, item)
    digest = hashlib.sha256(PDF).hexdigest()
    assert record.state is DownloadState.READY and record.reason is None
    assert (record.key, record.sha256, record.size) == (f"{digest}.pdf", digest, len(PDF))
    assert record.mime_type == "application/pdf"
    assert record.path == media_store.root / f"{digest}.pdf"
    assert record.path.read_bytes() == PDF
    assert record.filename == "../../etc/passwd"  # kept as data, never used as a path
    assert sorted(p.name for p in media_store.root.iterdir()) == [f"{digest}.pdf"]
    assert (sim.requests("graph.media"), sim.requests("graph.media_download")) == (1, 1)


async def test_two_messages_with_the_same_bytes_keep_one_file(
    sim, store, media_store, make_fetcher
):
    fetcher = make_fetcher()
    fetcher.submit([media_item("wamid.a", sim.add(JPEG)), media_item("wamid.b", sim.add(JPEG))])
    await fetcher.wait_idle()
    first = await store.run(lambda c: media_for_message(c, "wamid.a"))
    second = await store.run(lambda c: media_for_message(c, "wamid.b"))
    assert first.state is second.state is DownloadState.READY
    assert first.key == second.key
    assert len(list(media_store.root.iterdir())) == 1


async def test_an_expired_url_is_looked_up_once_more(sim, store, make_fetcher):
    class UrlExpiresAfterLookup(GraphClient):
        lookups = 0

        async def media_info(self, media_id, access_token):
            result = await super().media_info(media_id, access_token)
            self.lookups += 1
            if self.lookups == 1:
                sim.engine.clock.advance(301)  # the 5-minute URL is dead before the download
            return result

    graph = UrlExpiresAfterLookup(sim.url, retry=FAST_RETRY)
    record = await fetch(make_fetcher(graph), store, media_item("wamid.1", sim.add(JPEG)))
    assert record.state is DownloadState.READY
    assert graph.lookups == 2
    assert sim.requests("graph.media_download") == 2


async def test_a_url_that_keeps_expiring_fails_as_expired(sim, store, media_store, make_fetcher):
    class AlwaysLate(GraphClient):
        async def media_info(self, media_id, access_token):
            result = await super().media_info(media_id, access_token)
            sim.engine.clock.advance(301)
            return result

    fetcher = make_fetcher(AlwaysLate(sim.url, retry=FAST_RETRY))
    record = await fetch(fetcher, store, media_item("wamid.1", sim.add(JPEG)))
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.EXPIRED)
    assert sim.requests("graph.media") == 2
    assert list(media_store.root.iterdir()) == []


async def test_bytes_that_do_not_match_the_webhook_hash_are_not_kept(
    sim, store, media_store, make_fetcher
):
    item = media_item("wamid.1", sim.add(JPEG), sha256=b64_sha(b"what the contact sent"))
    record = await fetch(make_fetcher(), store, item)
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.HASH_MISMATCH)
    assert record.key is None and record.path is None
    assert list(media_store.root.iterdir()) == []


async def test_a_file_over_the_limit_is_not_downloaded(sim, store, media_store, make_fetcher):
    record = await fetch(
        make_fetcher(max_bytes=len(JPEG) - 1), store, media_item("wamid.1", sim.add(JPEG))
    )
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.TOO_LARGE)
    assert sim.requests("graph.media_download") == 0
    assert list(media_store.root.iterdir()) == []


async def test_the_limit_holds_while_streaming_when_meta_gives_no_size(
    sim, store, media_store, make_fetcher
):
    class NoSize(GraphClient):
        async def media_info(self, media_id, access_token):
            result = await super().media_info(media_id, access_token)
            return replace(result, info=replace(result.info, file_size=None))

    fetcher = make_fetcher(NoSize(sim.url, retry=FAST_RETRY), max_bytes=len(JPEG) - 1)
    record = await fetch(fetcher, store, media_item("wamid.1", sim.add(JPEG)))
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.TOO_LARGE)
    assert sim.requests("graph.media_download") == 1
    assert list(media_store.root.iterdir()) == []


async def test_an_unknown_media_id_fails_as_not_found(sim, store, make_fetcher):
    record = await fetch(make_fetcher(), store, media_item("wamid.1", "1234567890123456"))
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.NOT_FOUND)


async def test_a_media_id_that_is_not_a_graph_id_is_never_requested(sim, store, make_fetcher):
    record = await fetch(make_fetcher(), store, media_item("wamid.1", "../../v21.0/me"))
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.NOT_FOUND)
    assert sum(sim.engine.stats.requests.values()) == 0


async def test_no_answer_fails_as_network(store, make_fetcher):
    graph = GraphClient(f"http://127.0.0.1:{free_port()}", retry=FAST_RETRY)
    record = await fetch(make_fetcher(graph), store, media_item("wamid.1", "1234"))
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.NETWORK)


async def test_a_refused_token_fails_as_refused(sim, store, make_fetcher):
    fetcher = make_fetcher(access_token_for=lambda _phone: "not-the-token")
    record = await fetch(fetcher, store, media_item("wamid.1", sim.add(JPEG)))
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.REFUSED)
    assert "190" in record.detail or "token" in record.detail.lower()


async def test_a_store_that_cannot_keep_the_file_fails_as_storage(sim, store, make_fetcher):
    class FullDisk:
        async def put(self, source, mime_type):
            async for _chunk in source:
                pass
            raise OSError(28, "No space left on device")

    record = await fetch(
        make_fetcher(media_store=FullDisk()), store, media_item("wamid.1", sim.add(JPEG))
    )
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.STORAGE)
    assert "No space left" in record.detail


async def test_a_download_slower_than_the_timeout_fails_as_network(sim, store, make_fetcher):
    sim.engine.faults.apply({"latency_ms": 1000})
    record = await fetch(
        make_fetcher(timeout_seconds=0.2), store, media_item("wamid.1", sim.add(JPEG))
    )
    assert (record.state, record.reason) == (DownloadState.FAILED, FailureReason.NETWORK)
    assert "not done within" in record.detail


async def test_downloads_run_a_bounded_number_at_once(sim, store, make_fetcher):
    class Counting(GraphClient):
        running = peak = 0

        async def download(self, url, access_token, consume):
            Counting.running += 1
            Counting.peak = max(Counting.peak, Counting.running)
            try:
                return await super().download(url, access_token, consume)
            finally:
                Counting.running -= 1

    sim.engine.faults.apply({"latency_ms": 100})
    fetcher = make_fetcher(Counting(sim.url, retry=FAST_RETRY), max_concurrent=2)
    files = [JPEG + bytes([n]) for n in range(5)]
    items = [media_item(f"wamid.{n}", sim.add(data), data) for n, data in enumerate(files)]
    fetcher.submit(items)
    await fetcher.wait_idle()
    records = [await store.run(lambda c, i=i: media_for_message(c, i.message_id)) for i in items]
    assert {r.state for r in records} == {DownloadState.READY}
    assert Counting.peak == 2


# ---------------------------------------------------------------- crash recovery


async def test_a_fetch_that_died_with_its_process_is_taken_over_at_start_up(
    sim, store, make_fetcher
):
    abandoned = media_item("wamid.old", sim.add(JPEG))
    running = media_item("wamid.now", sim.add(PDF, "application/pdf"), PDF)
    for item in (abandoned, running):
        (job,) = media_jobs(item)
        assert await store.run(lambda c, job=job: insert_job(c, job))
    await store.run(
        lambda c: c.execute(
            media.update()
            .where(media.c.message_id == "wamid.old")
            .values(updated_at=time.time() - 600)
        )
    )
    fetcher = make_fetcher(lease_seconds=60)
    assert await fetcher.recover() == 1
    await fetcher.wait_idle()
    old = await store.run(lambda c: media_for_message(c, "wamid.old"))
    now = await store.run(lambda c: media_for_message(c, "wamid.now"))
    assert old.state is DownloadState.READY
    assert now.state is DownloadState.DOWNLOADING  # another process may still be on it
    assert await fetcher.recover() == 0


# ---------------------------------------------------------------- what turns and actions see


async def test_the_turn_sees_the_state_known_at_turn_time(sim, store, make_fetcher):
    sim.engine.faults.apply({"latency_ms": 300})
    fetcher = make_fetcher()
    item = media_item("wamid.1", sim.add(JPEG))
    fetcher.submit([item])
    during = await fetcher.with_download_state(item)
    assert during.metadata["whatsapp"]["media"]["download"] == {
        "state": "downloading",
        "reason": None,
    }
    assert "download" not in item.metadata["whatsapp"]["media"]  # the item is not changed
    await fetcher.wait_idle()
    after = await fetcher.with_download_state(item)
    assert after.metadata["whatsapp"]["media"]["download"] == {"state": "ready", "reason": None}


async def test_a_failed_download_is_told_to_the_turn(sim, store, make_fetcher):
    fetcher = make_fetcher()
    item = media_item("wamid.1", "999999")
    await fetch(fetcher, store, item)
    annotated = await fetcher.with_download_state(item)
    assert annotated.metadata["whatsapp"]["media"]["download"] == {
        "state": "failed",
        "reason": "not_found",
    }
    assert annotated.text == item.text


async def test_messages_without_media_are_left_alone(make_fetcher):
    fetcher = make_fetcher()
    text = InboxItem("wamid.t", CONTACT, PHONE, CONTACT, 1, True, "hi",
                     {"whatsapp": {"type": "text"}})
    fetcher.submit([text])
    assert await fetcher.with_download_state(text) is text
    assert await fetcher.state_for("wamid.t") is None


async def test_every_part_of_an_album_turn_gets_its_state(sim, store, make_fetcher):
    fetcher = make_fetcher()
    parts = [media_item("wamid.p1", sim.add(JPEG)), media_item("wamid.p2", "404404")]
    fetcher.submit(parts)
    await fetcher.wait_idle()
    album = await fetcher.with_download_state(merge_album(parts))
    details = album.metadata["whatsapp"]
    assert details["media"]["download"]["state"] == "ready"
    assert [part["media"]["download"] for part in details["album"]] == [
        {"state": "ready", "reason": None},
        {"state": "failed", "reason": "not_found"},
    ]


async def test_a_media_message_with_no_fetch_on_record_gets_one(sim, store, make_fetcher):
    fetcher = make_fetcher()
    item = media_item("wamid.1", sim.add(JPEG))  # accepted, then the process died
    annotated = await fetcher.with_download_state(item)
    assert annotated.metadata["whatsapp"]["media"]["download"]["state"] == "downloading"
    await fetcher.wait_idle()
    assert (await fetcher.state_for("wamid.1"))["state"] == "ready"


async def test_the_turn_goes_on_when_the_state_cannot_be_read(store, make_fetcher, monkeypatch):
    fetcher = make_fetcher()
    item = media_item("wamid.1", "1234")

    async def database_down(_fn):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(store, "run", database_down)
    assert await fetcher.with_download_state(item) is item


async def test_an_action_reads_the_file_through_its_own_engine(sim, store, tmp_path, make_fetcher):
    await fetch(make_fetcher(), store, media_item("wamid.1", sim.add(JPEG)))
    engine = create_engine(f"sqlite:///{tmp_path / 'channel.db'}")  # as the action server does
    try:
        with engine.connect() as connection:
            record = media_for_message(connection, "wamid.1")
            missing = media_for_message(connection, "wamid.unknown")
    finally:
        engine.dispose()
    assert missing is None
    assert record.state is DownloadState.READY
    assert (record.media_type, record.conversation_id) == ("image", CONTACT)
    assert hashlib.sha256(record.path.read_bytes()).hexdigest() == record.sha256


async def test_a_record_in_another_store_has_a_url_and_no_path():
    from whatsapp_core.media_records import MediaRecord

    record = MediaRecord("w", "m", "c", "image", DownloadState.READY, None, None, "k",
                         "s3://bucket/k", "image/jpeg", 1, "ab", None, 0.0)
    assert record.path is None


# ---------------------------------------------------------------- verification helpers


def test_meta_hashes_are_read_in_hex_and_base64():
    digest = hashlib.sha256(JPEG).digest()
    assert parse_sha256(digest.hex()) == digest
    assert parse_sha256(digest.hex().upper()) == digest
    assert parse_sha256(base64.b64encode(digest).decode()) == digest
    assert parse_sha256(base64.b64encode(b"short").decode()) is None
    assert parse_sha256("not a hash") is None
    assert parse_sha256("") is None and parse_sha256(None) is None


async def chunks(*parts: bytes):
    for part in parts:
        yield part


async def test_a_verified_stream_passes_good_bytes_and_stops_bad_ones():
    digest = hashlib.sha256(JPEG).digest()
    good = [c async for c in verified(chunks(JPEG[:5], JPEG[5:]), len(JPEG), [digest, digest])]
    assert b"".join(good) == JPEG
    with pytest.raises(HashMismatch):
        [c async for c in verified(chunks(JPEG), len(JPEG), [digest, b"\0" * 32])]
    seen = []
    with pytest.raises(MediaTooLarge):
        async for chunk in verified(chunks(b"12345", b"67890", b"x"), 8, []):
            seen.append(chunk)
    assert seen == [b"12345"]  # stopped before passing the chunk over the limit


async def test_stored_media_of_a_verified_stream_that_fails_is_not_kept(tmp_path):
    store = LocalMediaStore(tmp_path)
    with pytest.raises(HashMismatch):
        await store.put(verified(chunks(JPEG), 10**6, [b"\0" * 32]), "image/jpeg")
    assert list(tmp_path.iterdir()) == []
    ok = await store.put(verified(chunks(JPEG), 10**6, []), "image/jpeg")
    assert isinstance(ok, StoredMedia)


async def test_stop_leaves_unfinished_rows_for_recovery(sim, store, make_fetcher):
    sim.engine.faults.apply({"latency_ms": 2000})
    fetcher = make_fetcher()
    fetcher.submit([media_item("wamid.1", sim.add(JPEG))])
    await asyncio.sleep(0.2)
    await fetcher.stop()
    record = await store.run(lambda c: media_for_message(c, "wamid.1"))
    assert record.state is DownloadState.DOWNLOADING
