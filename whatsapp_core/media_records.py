"""The state of inbound media files: the ``whatsapp_media`` table and how to read it.

One row per contact message carrying media (image, video, audio, document, sticker):
``downloading`` until :mod:`whatsapp_core.media_fetch` kept the file (``ready``, with the
media store's key and location) or gave up (``failed``, with a :class:`FailureReason`).

The functions take a SQLAlchemy ``Connection``, so the channel (through
``WhatsAppStore.run``) and the action server (with its own engine on
``WHATSAPP_STORE_URL``) share them. This module imports neither aiohttp nor the Graph
client: an action needs only :func:`media_for_message`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core.media_store import StoredMedia
from whatsapp_core.normalize import MEDIA_TYPES
from whatsapp_core.schema import insert_ignoring_duplicate, media
from whatsapp_core.store import InboxItem


class DownloadState(str, Enum):
    """Where a message's file is."""

    DOWNLOADING = "downloading"
    READY = "ready"
    FAILED = "failed"


class FailureReason(str, Enum):
    """Why a file could not be kept."""

    EXPIRED = "expired"
    """The download URL was refused (401/404) again after a fresh one was asked for."""
    NOT_FOUND = "not_found"
    """Meta does not know the media id (or it is older than Meta keeps inbound media)."""
    TOO_LARGE = "too_large"
    """Larger than ``media_max_bytes`` (by Meta's size, or counted while downloading)."""
    HASH_MISMATCH = "hash_mismatch"
    """The bytes do not have the SHA-256 Meta gave."""
    NETWORK = "network"
    """No usable answer (connection, timeout, 5xx, throttling) after retries."""
    REFUSED = "refused"
    """Another Graph error (token, permission): see the row's ``detail``."""
    STORAGE = "storage"
    """The media store could not keep the file (disk full, store unreachable)."""


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """A contact message's file as the store knows it.

    Fields:
        message_id: The wamid of the contact's message.
        media_id: Meta's media id.
        conversation_id: The conversation (the contact's wa_id).
        media_type: ``image``, ``video``, ``audio``, ``document`` or ``sticker``.
        state: :class:`DownloadState`.
        reason: Why it failed (``state`` failed), else None.
        detail: What failed, in words (failed only).
        key: The media store's key (ready only).
        location: Where the store keeps it: a local path, or a URL (ready only).
        mime_type: The MIME type (Meta's, once known).
        size: Bytes (ready only).
        sha256: SHA-256 hex of the kept bytes (ready only).
        filename: The document's filename as the contact sent it (never used as a path).
        updated_at: Unix time of the last change.
    """

    message_id: str
    media_id: str
    conversation_id: str
    media_type: str
    state: DownloadState
    reason: FailureReason | None
    detail: str | None
    key: str | None
    location: str | None
    mime_type: str | None
    size: int | None
    sha256: str | None
    filename: str | None
    updated_at: float

    @property
    def path(self) -> Path | None:
        """The kept file as a local path when ready in a local store; None otherwise."""
        if self.state is not DownloadState.READY or not self.location or "://" in self.location:
            return None
        return Path(self.location)


@dataclass(frozen=True, slots=True)
class MediaJob:
    """What is needed to fetch one message's file (all of it is in the ``whatsapp_media`` row,
    so a fetch can restart after a crash)."""

    message_id: str
    conversation_id: str
    phone_number_id: str | None
    media_id: str
    media_type: str
    mime_type: str | None
    webhook_sha256: str | None
    filename: str | None

    @classmethod
    def from_message(
        cls, item: InboxItem, message_id: Any, media_type: Any, content: Any
    ) -> MediaJob | None:
        """The job for one message of ``item`` whose ``type`` is ``media_type`` and whose
        media object (id, mime_type, sha256, filename) is ``content``; None when that is not
        a media message with an id."""
        if media_type not in MEDIA_TYPES or not isinstance(content, dict):
            return None
        media_id = content.get("id")
        if not isinstance(message_id, str) or not isinstance(media_id, str) or not media_id:
            return None
        return cls(
            message_id=message_id,
            conversation_id=item.conversation_id,
            phone_number_id=item.phone_number_id,
            media_id=media_id,
            media_type=media_type,
            mime_type=_optional_text(content.get("mime_type")),
            webhook_sha256=_optional_text(content.get("sha256")),
            filename=_optional_text(content.get("filename")),
        )


def media_jobs(item: InboxItem) -> list[MediaJob]:
    """The files an accepted message carries: its own, or every part's for an album turn
    (``metadata["whatsapp"]["album"]``, see :mod:`whatsapp_core.albums`)."""
    details = item.metadata.get("whatsapp")
    if not isinstance(details, dict):
        return []
    album = details.get("album")
    if isinstance(album, list) and album:
        parts = [
            (part.get("message_id"), part.get("type"), part.get("media"))
            for part in album
            if isinstance(part, dict)
        ]
    else:
        parts = [(item.message_id, details.get("type"), details.get("media"))]
    jobs = [MediaJob.from_message(item, *part) for part in parts]
    return [job for job in jobs if job is not None]


def media_for_message(connection: Connection, message_id: str) -> MediaRecord | None:
    """The file of the contact's message ``message_id``, or None when it carried none (or
    its fetch has not been recorded yet). Sync: use it from the action server with an
    engine on ``WHATSAPP_STORE_URL``; the channel calls it through the store's thread."""
    row = connection.execute(sa.select(media).where(media.c.message_id == message_id)).first()
    if row is None:
        return None
    return MediaRecord(
        message_id=row.message_id,
        media_id=row.media_id,
        conversation_id=row.conversation_id,
        media_type=row.media_type,
        state=DownloadState(row.state),
        reason=FailureReason(row.reason) if row.reason else None,
        detail=row.detail,
        key=row.store_key,
        location=row.location,
        mime_type=row.mime_type,
        size=row.size,
        sha256=row.sha256,
        filename=row.filename,
        updated_at=row.updated_at,
    )


def insert_job(connection: Connection, job: MediaJob) -> bool:
    """Record a fetch about to start (``downloading``); False (and nothing written) when the
    message already has a row."""
    now = time.time()
    return insert_ignoring_duplicate(
        connection,
        media,
        {
            "message_id": job.message_id,
            "media_id": job.media_id,
            "conversation_id": job.conversation_id,
            "phone_number_id": job.phone_number_id,
            "media_type": job.media_type,
            "state": DownloadState.DOWNLOADING.value,
            "mime_type": job.mime_type,
            "webhook_sha256": job.webhook_sha256,
            "filename": job.filename,
            "created_at": now,
            "updated_at": now,
        },
    )


def touch_job(connection: Connection, message_id: str) -> None:
    """Record that a fetch of ``message_id``'s file starts now (renews its lease)."""
    connection.execute(
        media.update()
        .where(media.c.message_id == message_id)
        .values(updated_at=time.time())
    )


def finish_job(
    connection: Connection,
    message_id: str,
    stored: StoredMedia | None,
    reason: FailureReason | None = None,
    detail: str = "",
) -> None:
    """Record the end of a fetch: ``stored`` (ready), or the failure ``reason``/``detail``."""
    values: dict[str, Any] = {"updated_at": time.time()}
    if stored is not None:
        values |= {
            "state": DownloadState.READY.value,
            "reason": None,
            "detail": None,
            "store_key": stored.key,
            "location": stored.location,
            "mime_type": stored.mime_type,
            "size": stored.size,
            "sha256": stored.sha256,
        }
    else:
        values |= {
            "state": DownloadState.FAILED.value,
            "reason": reason.value if reason else None,
            "detail": detail[:2000],
        }
    connection.execute(media.update().where(media.c.message_id == message_id).values(**values))


def claim_abandoned(connection: Connection, lease_seconds: float) -> list[MediaJob]:
    """Take over files left ``downloading`` for more than ``lease_seconds`` (their fetch died
    with its process): renew their lease and return their jobs, oldest first."""
    now = time.time()
    rows = connection.execute(
        sa.select(media)
        .where(media.c.state == DownloadState.DOWNLOADING.value)
        .where(media.c.updated_at < now - lease_seconds)
        .order_by(media.c.created_at)
        .limit(1000)
    ).fetchall()
    jobs = []
    for row in rows:
        claimed = connection.execute(
            media.update()
            .where(media.c.message_id == row.message_id)
            .where(media.c.updated_at == row.updated_at)
            .values(updated_at=now)
        )
        if claimed.rowcount == 1:
            jobs.append(
                MediaJob(
                    message_id=row.message_id,
                    conversation_id=row.conversation_id,
                    phone_number_id=row.phone_number_id,
                    media_id=row.media_id,
                    media_type=row.media_type,
                    mime_type=row.mime_type,
                    webhook_sha256=row.webhook_sha256,
                    filename=row.filename,
                )
            )
    return jobs


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
