"""Inbound media: every file a contact sends is fetched after the webhook ack and kept.

For each accepted image, video, audio (voice notes included), document and sticker,
:class:`MediaFetcher` runs in the background, never on the webhook path:

1. ``GET /{media_id}`` for a download URL, the MIME type, the size and the SHA-256;
2. a size above ``max_bytes`` fails at once; otherwise the URL is downloaded with the
   bearer token, counting bytes (the limit holds even when Meta's size was wrong) and
   hashing them: the hash must equal Meta's (hex from the media endpoint, base64 in the
   webhook: both are accepted and both must match);
3. a download answered 401 or 404 means the URL expired (they live 5 minutes): a fresh
   URL is asked for once more;
4. the bytes go to the :class:`~whatsapp_core.media_store.MediaStore`, named by their
   hash, so a file sent twice is kept once.

The state of each message's file is a row of ``whatsapp_media`` (``downloading``, then
``ready`` or ``failed`` with a :class:`FailureReason`). Downloads run at most
``max_concurrent`` at once, each within ``timeout_seconds``, on the Graph client's
shared session. A row left ``downloading`` by a process that died is fetched again by
:meth:`MediaFetcher.recover` at start-up, once older than the lease.

The turn may run before the download ends: :meth:`MediaFetcher.with_download_state`
puts the state known at turn time in ``metadata["whatsapp"]["media"]["download"]``.
A failed download never stops the turn. Actions read the outcome with
:func:`media_for_message` (sync, on any SQLAlchemy connection to the store's database).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import functools
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from typing import BinaryIO

from whatsapp_core.graph_client import GraphClient, GraphError
from whatsapp_core.media_records import (
    DownloadState,
    FailureReason,
    MediaJob,
    MediaRecord,
    claim_abandoned,
    finish_job,
    insert_job,
    media_for_message,
    media_jobs,
    touch_job,
)
from whatsapp_core.media_store import MediaStore, StoredMedia
from whatsapp_core.store import InboxItem, WhatsAppStore

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT = 4
DEFAULT_TIMEOUT_SECONDS = 120.0
_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_EXPIRED_STATUSES = (401, 404)
_NOT_FOUND_CODE = 100


class MediaTooLarge(Exception):
    """Raised from a download stream once it passes the size limit."""


class HashMismatch(Exception):
    """Raised at the end of a download stream whose SHA-256 is not the expected one."""


def parse_sha256(value: str | None) -> bytes | None:
    """A SHA-256 digest from Meta's hex (media endpoint) or base64 (webhook) form; None when
    ``value`` is empty or neither."""
    if not value:
        return None
    text = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == hashlib.sha256().digest_size else None


async def verified(
    chunks: AsyncIterator[bytes], max_bytes: int, expected: Iterable[bytes]
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through; raise :class:`MediaTooLarge` as soon as more than
    ``max_bytes`` went by, and :class:`HashMismatch` after the last chunk when the SHA-256
    differs from any ``expected`` digest."""
    wanted = list(expected)
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise MediaTooLarge(f"more than {max_bytes} bytes")
        digest.update(chunk)
        yield chunk
    actual = digest.digest()
    if any(actual != digest_wanted for digest_wanted in wanted):
        raise HashMismatch(f"sha256 {actual.hex()} is not the one Meta gave")


@dataclass(frozen=True, slots=True)
class _Outcome:
    stored: StoredMedia | None = None
    reason: FailureReason | None = None
    detail: str = ""


class MediaFetcher:
    """Fetches inbound media in the background; see the module docstring.

    Args:
        store: The channel's SQL store (the ``whatsapp_media`` table).
        graph: The Graph client whose shared session carries the downloads.
        media_store: Where files are kept.
        access_token_for: The access token for a business phone number id.
        max_bytes: Largest file kept (``media_max_bytes``).
        max_concurrent: Downloads running at once.
        timeout_seconds: Time allowed for one file, URL look-ups and retries included.
        lease_seconds: Age after which a ``downloading`` row counts as abandoned by a
            process that died (default: twice ``timeout_seconds``).
    """

    def __init__(
        self,
        store: WhatsAppStore,
        graph: GraphClient,
        media_store: MediaStore,
        *,
        access_token_for: Callable[[str | None], str],
        max_bytes: int,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        lease_seconds: float | None = None,
    ) -> None:
        self._store = store
        self._graph = graph
        self._media_store = media_store
        self._token_for = access_token_for
        self._max_bytes = max_bytes
        self._slots = asyncio.Semaphore(max_concurrent)
        self._timeout = timeout_seconds
        self._lease = lease_seconds if lease_seconds is not None else 2 * timeout_seconds
        self._submitted: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ start
    def submit(self, items: Iterable[InboxItem]) -> None:
        """Start fetching the files of newly accepted ``items`` (others are ignored).

        Returns at once: the work, database writes included, runs in background tasks.
        """
        for item in items:
            for job in media_jobs(item):
                self._start(job)

    async def recover(self) -> int:
        """Fetch again the files left ``downloading`` for longer than the lease (a process
        died while fetching them); return how many were taken over."""
        jobs = await self._store.run(lambda c: claim_abandoned(c, self._lease))
        for job in jobs:
            self._spawn(job, insert=False)
        if jobs:
            logger.info("WhatsApp media: %d unfinished download(s) taken over", len(jobs))
        return len(jobs)

    # ------------------------------------------------------------------ state
    async def record_for(self, message_id: str) -> MediaRecord | None:
        """:func:`media_for_message` through the store's thread."""
        return await self._store.run(lambda c: media_for_message(c, message_id))

    async def open_file(self, record: MediaRecord) -> BinaryIO:
        """The kept file of a ``ready`` record, opened for reading (the caller closes it)."""
        if record.key is None:
            raise FileNotFoundError(record.message_id)
        return await self._media_store.open(record.key)

    async def state_for(self, message_id: str) -> dict[str, str | None] | None:
        """``{"state": ..., "reason": ...}`` of the message's file now; None when the
        message has no file being fetched or kept."""
        record = await self.record_for(message_id)
        if record is not None:
            return {
                "state": record.state.value,
                "reason": record.reason.value if record.reason else None,
            }
        if message_id in self._submitted:
            return {"state": DownloadState.DOWNLOADING.value, "reason": None}
        return None

    async def with_download_state(self, item: InboxItem) -> InboxItem:
        """``item`` with ``"download": {"state", "reason"}`` (see :meth:`state_for`) added to
        its media object ``metadata["whatsapp"]["media"]``, and to each part's media of an
        album turn; items without media are returned as they are.

        A file with no fetch on record (accepted just before a crash) has its fetch started
        here. Never raises: when the state cannot be read the item is returned unchanged
        and the turn goes on.
        """
        jobs = media_jobs(item)
        if not jobs:
            return item
        try:
            states = {job.message_id: await self._state_or_start(job) for job in jobs}
        except Exception:  # noqa: BLE001 - the turn must not be lost to a media lookup
            logger.exception("WhatsApp media state of %s could not be read", item.message_id)
            return item
        metadata = copy.deepcopy(item.metadata)
        details = metadata["whatsapp"]
        described = [(item.message_id, details.get("media"))] + [
            (part.get("message_id"), part.get("media")) for part in details.get("album") or []
        ]
        for message_id, content in described:
            if message_id in states and isinstance(content, dict):
                content["download"] = states[message_id]
        return replace(item, metadata=metadata)

    async def _state_or_start(self, job: MediaJob) -> dict[str, str | None]:
        state = await self.state_for(job.message_id)
        if state is None:
            self._start(job)
            state = {"state": DownloadState.DOWNLOADING.value, "reason": None}
        return state

    async def wait_idle(self) -> None:
        """Return once every fetch started so far has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel running fetches; their rows stay ``downloading`` for :meth:`recover`."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ work
    def _start(self, job: MediaJob) -> None:
        self._submitted.add(job.message_id)
        self._spawn(job, insert=True)

    def _spawn(self, job: MediaJob, *, insert: bool) -> None:
        task = asyncio.create_task(self._run(job, insert=insert), name="whatsapp-media")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: MediaJob, *, insert: bool) -> None:
        try:
            if insert and not await self._store.run(lambda c: insert_job(c, job)):
                return  # another fetch of this message is on record
            async with self._slots:
                await self._store.run(lambda c: touch_job(c, job.message_id))
                try:
                    outcome = await asyncio.wait_for(self._fetch(job), self._timeout)
                except asyncio.TimeoutError:
                    outcome = _Outcome(
                        reason=FailureReason.NETWORK,
                        detail=f"not done within {self._timeout:g} s",
                    )
            await self._store.run(
                lambda c: finish_job(
                    c, job.message_id, outcome.stored, outcome.reason, outcome.detail
                )
            )
        except Exception:  # noqa: BLE001 - a background task has no one to raise to
            logger.exception("WhatsApp media %s: fetch failed", job.message_id)
            return
        finally:
            self._submitted.discard(job.message_id)
        if outcome.stored is not None:
            logger.info(
                "WhatsApp media %s kept as %s (%d bytes)",
                job.message_id,
                outcome.stored.key,
                outcome.stored.size,
            )
        else:
            logger.warning(
                "WhatsApp media %s (%s) not kept: %s (%s)",
                job.message_id,
                job.media_type,
                outcome.reason.value if outcome.reason else "?",
                outcome.detail,
            )

    async def _fetch(self, job: MediaJob) -> _Outcome:
        if not _MEDIA_ID.fullmatch(job.media_id):
            return _Outcome(reason=FailureReason.NOT_FOUND, detail="not a Graph media id")
        token = self._token_for(job.phone_number_id)
        refused: GraphError | None = None
        for _ in range(2):  # the URL may expire between look-up and download: one more look-up
            looked_up = await self._graph.media_info(job.media_id, token)
            info = looked_up.info
            if info is None:
                return _lookup_failure(looked_up.error)
            if info.file_size is not None and info.file_size > self._max_bytes:
                return _Outcome(
                    reason=FailureReason.TOO_LARGE,
                    detail=f"{info.file_size} bytes, over the limit of {self._max_bytes}",
                )
            expected = [
                digest
                for digest in (parse_sha256(info.sha256), parse_sha256(job.webhook_sha256))
                if digest is not None
            ]
            mime_type = info.mime_type or job.mime_type or "application/octet-stream"
            keep = functools.partial(self._keep, expected=expected, mime_type=mime_type)
            try:
                downloaded = await self._graph.download(info.url, token, keep)
            except MediaTooLarge as error:
                return _Outcome(reason=FailureReason.TOO_LARGE, detail=str(error))
            except HashMismatch as error:
                return _Outcome(reason=FailureReason.HASH_MISMATCH, detail=str(error))
            except Exception as error:  # noqa: BLE001 - whatever a media store raises
                return _Outcome(reason=FailureReason.STORAGE, detail=repr(error))
            if downloaded.value is not None:
                return _Outcome(stored=downloaded.value)
            refused = downloaded.error
            if refused is None or refused.http_status not in _EXPIRED_STATUSES:
                return _graph_failure(refused)
        return _Outcome(
            reason=FailureReason.EXPIRED,
            detail=f"download refused twice (HTTP {refused.http_status if refused else '?'})",
        )

    async def _keep(
        self, chunks: AsyncIterator[bytes], *, expected: list[bytes], mime_type: str
    ) -> StoredMedia:
        """Stream a download into the media store, verified (size, hash) on the way."""
        return await self._media_store.put(verified(chunks, self._max_bytes, expected), mime_type)


def _lookup_failure(error: GraphError | None) -> _Outcome:
    if error is not None and (error.code == _NOT_FOUND_CODE or error.http_status == 404):
        return _Outcome(reason=FailureReason.NOT_FOUND, detail=error.title)
    return _graph_failure(error)


def _graph_failure(error: GraphError | None) -> _Outcome:
    if error is None:
        return _Outcome(reason=FailureReason.NETWORK, detail="no answer")
    status = error.http_status or 0
    transient = error.network or status == 429 or status >= 500 or error.info.retryable
    reason = FailureReason.NETWORK if transient else FailureReason.REFUSED
    return _Outcome(reason=reason, detail=f"{error.title} {error.details}".strip())
