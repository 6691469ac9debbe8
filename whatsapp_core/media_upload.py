"""Outbound local files: upload a file from ``media_upload_dir`` once, then send it by id.

A reply may name a local file instead of a link or a media id (see
:mod:`whatsapp_core.outbound`)::

    {"attachment": {"path": "receipts/2024-17.pdf", "filename": "Receipt.pdf"}}
    {"custom": {"whatsapp": {"type": "image", "image": {"path": "promo/spring.jpg"}}}}

The outbox keeps the message with its ``path``; the sender's per-recipient worker calls
:meth:`LocalMediaUploader.prepare` just before sending (never in the bot turn), which
uploads the file (``POST /{phone_number_id}/media``) and puts the media id in place of
the path. Meta keeps an uploaded file 30 days: the id is remembered per file content
(SHA-256) and business number in ``whatsapp_media_uploads`` and reused for
``reuse_seconds`` (29 days), so sending the same file again uploads nothing.

Only regular files inside ``media_upload_dir`` are sent: a path is relative to it (or
absolute inside it); ``..``, paths leading elsewhere and symbolic links anywhere below
the directory are refused, and so are file types WhatsApp does not take. A refused file
fails its message with the reason (``local file refused``); nothing is uploaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core.graph_client import GraphClient
from whatsapp_core.media_store import mime_for_extension
from whatsapp_core.schema import media_uploads
from whatsapp_core.store import WhatsAppStore

REUSE_SECONDS = 29 * 24 * 3600.0
"""How long an uploaded media id is reused (Meta keeps uploads 30 days)."""
REFUSED_TITLE = "local file refused"
_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_CHUNK = 1024 * 1024


class LocalFileRefused(ValueError):
    """A local file that may not be sent; the message says which and why."""


def local_path_of(payload: dict[str, Any]) -> str | None:
    """The ``path`` a media message names instead of an id or link; None when it names none."""
    message_type = payload.get("type")
    content = payload.get(message_type) if message_type in _MEDIA_TYPES else None
    path = content.get("path") if isinstance(content, dict) else None
    return path if isinstance(path, str) else None


@dataclass(frozen=True, slots=True)
class PreparedPayload:
    """A message ready to send, or why it cannot be sent.

    Fields:
        payload: The message with the media id in place of the local path (the same
            payload when it named no local file); None when it cannot be sent.
        error_title: :data:`REFUSED_TITLE`, or the Graph error's title when the upload
            failed; None when ready.
        error_details: The reason, in words.
        error_code: Meta's error code of a failed upload.
    """

    payload: dict[str, Any] | None
    error_title: str | None = None
    error_details: str | None = None
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class _LocalFile:
    fd: int
    name: str
    mime_type: str
    sha256: str


class LocalMediaUploader:
    """Turns local-file media messages into sends by media id; see the module docstring.

    Args:
        store: The channel's SQL store (the upload cache table).
        graph: The Graph client (its shared session carries the uploads).
        upload_dir: The only directory files are sent from (created if missing).
        reuse_seconds: How long an uploaded id is reused.
        clock: Unix time in seconds (inject a fake in tests).
    """

    def __init__(
        self,
        store: WhatsAppStore,
        graph: GraphClient,
        upload_dir: str | os.PathLike[str],
        *,
        reuse_seconds: float = REUSE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        root = Path(upload_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._store = store
        self._graph = graph
        self._reuse = reuse_seconds
        self._clock = clock

    async def prepare(
        self, phone_number_id: str, access_token: str, payload: dict[str, Any]
    ) -> PreparedPayload:
        """``payload`` ready to send: a local file is uploaded (or its remembered id reused)
        and named by id. Never raises for a refused file or a failed upload: the result
        says why."""
        raw_path = local_path_of(payload)
        if raw_path is None:
            return PreparedPayload(payload)
        loop = asyncio.get_running_loop()
        try:
            local = await loop.run_in_executor(None, self._open, raw_path)
        except LocalFileRefused as refusal:
            return PreparedPayload(None, REFUSED_TITLE, str(refusal))
        try:
            media_id = await self._store.run(
                lambda c: _remembered(c, phone_number_id, local, self._clock() - self._reuse)
            )
            if media_id is None:
                result = await self._graph.upload(
                    phone_number_id, access_token, _reader(local.fd), local.mime_type, local.name
                )
                if result.media_id is None:
                    error = result.error
                    return PreparedPayload(
                        None,
                        error.title if error else "upload failed",
                        error.details if error else None,
                        error.code if error else None,
                    )
                media_id = result.media_id
                now = self._clock()
                await self._store.run(
                    lambda c: _remember(c, phone_number_id, local, media_id, now)
                )
        finally:
            os.close(local.fd)
        return PreparedPayload(_by_id(payload, media_id, local.name))

    def _open(self, raw_path: str) -> _LocalFile:
        """Open the file ``raw_path`` names (blocking: runs in a thread) and hash it."""
        path = self._resolve(raw_path)
        mime_type = mime_for_extension(path.suffix)
        if mime_type is None:
            raise LocalFileRefused(f"{raw_path!r}: WhatsApp does not take {path.suffix!r} files")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise LocalFileRefused(f"{raw_path!r} does not exist in {self.root}") from None
        except OSError as error:
            raise LocalFileRefused(f"{raw_path!r} cannot be opened: {error.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise LocalFileRefused(f"{raw_path!r} is not a regular file")
            if info.st_size == 0:
                raise LocalFileRefused(f"{raw_path!r} is empty")
            digest = hashlib.sha256()
            while chunk := os.read(fd, _CHUNK):
                digest.update(chunk)
        except BaseException:
            os.close(fd)
            raise
        return _LocalFile(fd, path.name, mime_type, digest.hexdigest())

    def _resolve(self, raw_path: str) -> Path:
        """The path inside the upload directory; refuses ``..``, other places and links."""
        given = PurePath(raw_path)
        if given.is_absolute():
            try:
                given = given.relative_to(self.root)
            except ValueError:
                raise LocalFileRefused(
                    f"{raw_path!r} is outside media_upload_dir {self.root}"
                ) from None
        if not given.parts or ".." in given.parts:
            raise LocalFileRefused(f"{raw_path!r} is outside media_upload_dir {self.root}")
        path = self.root / given
        if Path(os.path.realpath(path)) != path:
            raise LocalFileRefused(f"{raw_path!r} goes through a symbolic link")
        return path


def _reader(fd: int) -> Callable[[], BinaryIO]:
    """Opens the file again from its start for each upload attempt (closed after it)."""

    def open_file() -> BinaryIO:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.fdopen(os.dup(fd), "rb")

    return open_file


def _by_id(payload: dict[str, Any], media_id: str, name: str) -> dict[str, Any]:
    message_type = payload["type"]
    content = {k: v for k, v in payload[message_type].items() if k != "path"}
    content["id"] = media_id
    if message_type == "document":
        content.setdefault("filename", name)
    return {**payload, message_type: content}


def _remembered(
    connection: Connection, phone_number_id: str, local: _LocalFile, since: float
) -> str | None:
    return connection.execute(
        sa.select(media_uploads.c.media_id)
        .where(media_uploads.c.phone_number_id == phone_number_id)
        .where(media_uploads.c.sha256 == local.sha256)
        .where(media_uploads.c.mime_type == local.mime_type)
        .where(media_uploads.c.uploaded_at > since)
    ).scalar()


def _remember(
    connection: Connection, phone_number_id: str, local: _LocalFile, media_id: str, now: float
) -> None:
    key = (media_uploads.c.phone_number_id == phone_number_id) & (
        media_uploads.c.sha256 == local.sha256
    )
    connection.execute(media_uploads.delete().where(key))
    connection.execute(
        media_uploads.insert().values(
            phone_number_id=phone_number_id,
            sha256=local.sha256,
            media_id=media_id,
            mime_type=local.mime_type,
            uploaded_at=now,
        )
    )
