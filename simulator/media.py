"""Media storage: uploads, media created for inbound messages, and expiring download links."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from enum import Enum

UPLOADED_MEDIA_TTL_SECONDS = 30 * 24 * 3600
INBOUND_MEDIA_TTL_SECONDS = 7 * 24 * 3600
DOWNLOAD_URL_TTL_SECONDS = 5 * 60

MB = 1024 * 1024


class MediaKind(str, Enum):
    """Meta's media families, each with its own size cap."""

    AUDIO = "audio"
    DOCUMENT = "document"
    IMAGE = "image"
    STICKER = "sticker"
    VIDEO = "video"


MAX_BYTES: dict[MediaKind, int] = {
    MediaKind.AUDIO: 16 * MB,
    MediaKind.DOCUMENT: 100 * MB,
    MediaKind.IMAGE: 5 * MB,
    MediaKind.STICKER: 500 * 1024,
    MediaKind.VIDEO: 16 * MB,
}

# MIME type (without parameters) -> media family, per Meta's supported-media table.
SUPPORTED_MIME_TYPES: dict[str, MediaKind] = {
    "audio/aac": MediaKind.AUDIO,
    "audio/amr": MediaKind.AUDIO,
    "audio/mpeg": MediaKind.AUDIO,
    "audio/mp4": MediaKind.AUDIO,
    "audio/ogg": MediaKind.AUDIO,
    "text/plain": MediaKind.DOCUMENT,
    "application/pdf": MediaKind.DOCUMENT,
    "application/msword": MediaKind.DOCUMENT,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (MediaKind.DOCUMENT),
    "application/vnd.ms-excel": MediaKind.DOCUMENT,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": MediaKind.DOCUMENT,
    "application/vnd.ms-powerpoint": MediaKind.DOCUMENT,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        MediaKind.DOCUMENT
    ),
    "image/jpeg": MediaKind.IMAGE,
    "image/png": MediaKind.IMAGE,
    "image/webp": MediaKind.STICKER,
    "video/mp4": MediaKind.VIDEO,
    "video/3gpp": MediaKind.VIDEO,
}

# A valid 1x1 white JPEG, so inbound images are real, decodable files.
_TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwc"
    "KDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAA"
    "AAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="
)
_TINY_PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

DEFAULT_INBOUND_MIME: dict[MediaKind, str] = {
    MediaKind.AUDIO: "audio/ogg; codecs=opus",
    MediaKind.DOCUMENT: "application/pdf",
    MediaKind.IMAGE: "image/jpeg",
    MediaKind.STICKER: "image/webp",
    MediaKind.VIDEO: "video/mp4",
}


def base_mime(mime_type: str) -> str:
    """``"audio/ogg; codecs=opus"`` -> ``"audio/ogg"``."""
    return mime_type.split(";", 1)[0].strip().lower()


def sample_bytes(kind: MediaKind, mime_type: str) -> bytes:
    """Bytes to store for an inbound media message when the test supplies none.

    Images are a real JPEG and documents a real PDF; other kinds are a short labelled blob.
    """
    if kind is MediaKind.IMAGE and base_mime(mime_type) == "image/jpeg":
        return _TINY_JPEG
    if base_mime(mime_type) == "application/pdf":
        return _TINY_PDF
    return f"simulated {kind.value} ({mime_type}) {secrets.token_hex(8)}".encode()


@dataclass(frozen=True)
class MediaItem:
    """One stored file with the metadata Graph reports for it."""

    id: str
    mime_type: str
    data: bytes
    expires_at: float

    @property
    def file_size(self) -> int:
        return len(self.data)

    @property
    def sha256_hex(self) -> str:
        """Hex digest, as in ``GET /{media-id}``."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sha256_base64(self) -> str:
        """Base64 digest, as in inbound message webhooks."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()


@dataclass(frozen=True)
class DownloadLink:
    """A download URL token for one media item, valid until ``expires_at`` (sim clock)."""

    token: str
    media_id: str
    expires_at: float


class MediaStore:
    """Media ids and download links; all expiry is measured on the simulator's clock."""

    def __init__(self) -> None:
        self._items: dict[str, MediaItem] = {}
        self._links: dict[str, DownloadLink] = {}

    def add(
        self,
        data: bytes,
        mime_type: str,
        *,
        now: float,
        ttl_seconds: float,
    ) -> MediaItem:
        """Store ``data`` under a new numeric media id that lives ``ttl_seconds``."""
        media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        while media_id in self._items:
            media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        item = MediaItem(media_id, mime_type, data, now + ttl_seconds)
        self._items[media_id] = item
        return item

    def get(self, media_id: str, now: float) -> MediaItem | None:
        """The item, or None if the id is unknown or has expired."""
        item = self._items.get(media_id)
        if item is None or now >= item.expires_at:
            return None
        return item

    def issue_link(self, media_id: str, now: float) -> DownloadLink:
        """A fresh download token for an existing item, valid 5 simulated minutes."""
        link = DownloadLink(secrets.token_urlsafe(24), media_id, now + DOWNLOAD_URL_TTL_SECONDS)
        self._links[link.token] = link
        return link

    def resolve_link(self, token: str, media_id: str, now: float) -> MediaItem | None:
        """The item a download token grants, or None if unknown, mismatched or expired."""
        link = self._links.get(token)
        if link is None or link.media_id != media_id or now >= link.expires_at:
            return None
        return self.get(media_id, now)

    def clear(self) -> None:
        self._items.clear()
        self._links.clear()
