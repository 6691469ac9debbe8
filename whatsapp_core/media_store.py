"""Where media files are kept: the :class:`MediaStore` interface and a local directory.

A store keeps bytes under a key it chooses itself from the content: the SHA-256 as hex
plus an extension from the MIME type (``3f2a…9c.jpg``), so a file sent twice is kept
once. Nothing a webhook says (media ids, filenames) ever becomes part of a path: keys
come only from :meth:`MediaStore.put`, and :class:`LocalMediaStore` refuses any key
that is not of that exact form before touching the file system, and never follows a
symbolic link inside its directory.

A deployment replaces the local directory with its own store (S3, a CDN...) by naming
a class with the ``media_store`` key (``package.module:ClassName``, see
:func:`load_media_store` and ``docs/media.md``).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import re
import stat
import time
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

_EXTENSIONS = {
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/ogg": ".ogg",
    "text/plain": ".txt",
    "application/pdf": ".pdf",
    "application/msword": ".doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
}
"""WhatsApp's media MIME types (without parameters) and the extension files get."""

UNKNOWN_EXTENSION = ".bin"
_KEY = re.compile(r"^[0-9a-f]{64}\.[0-9a-z]{1,5}$")
_PARTIAL_PREFIX = ".partial-"
_PARTIAL_MAX_AGE = 24 * 3600.0
_CHUNK = 64 * 1024
_FILE_MODE = 0o640


class InvalidMediaKey(ValueError):
    """A key that a store did not produce (wrong form: a path, ``..``, another name)."""


def base_mime(mime_type: str) -> str:
    """``"audio/ogg; codecs=opus"`` → ``"audio/ogg"`` (lower case, no parameters)."""
    return mime_type.split(";", 1)[0].strip().lower()


def extension_for(mime_type: str) -> str:
    """The file extension for a MIME type: ``.jpg`` for ``image/jpeg``; ``.bin`` if unknown."""
    return _EXTENSIONS.get(base_mime(mime_type), UNKNOWN_EXTENSION)


def mime_for_extension(suffix: str) -> str | None:
    """The WhatsApp MIME type of a file extension (``.PDF`` → ``application/pdf``); ``.jpeg``
    counts as ``.jpg``. None for types WhatsApp does not take."""
    suffix = suffix.lower()
    suffix = ".jpg" if suffix == ".jpeg" else suffix
    return next((mime for mime, ext in _EXTENSIONS.items() if ext == suffix), None)


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """A file a store keeps.

    Fields:
        key: The store's name for it: ``<sha256 hex><extension>``.
        location: Where it is: an absolute path for :class:`LocalMediaStore`, a URL for
            stores that keep files elsewhere.
        mime_type: The MIME type given to :meth:`MediaStore.put`.
        size: Bytes.
        sha256: SHA-256 of the bytes, hex.
    """

    key: str
    location: str
    mime_type: str
    size: int
    sha256: str


@runtime_checkable
class MediaStore(Protocol):
    """Keeps media files by content. Implementations must be safe to call concurrently."""

    async def put(self, source: bytes | AsyncIterable[bytes], mime_type: str) -> StoredMedia:
        """Keep ``source`` (all of it) and return where it is.

        The key is the SHA-256 hex of the bytes plus :func:`extension_for` the MIME type;
        when the key is already kept, nothing is written again. When ``source`` raises,
        nothing is kept and the exception propagates: callers verify a stream by raising
        from it (size limit, hash mismatch).
        """
        ...

    async def open(self, key: str) -> BinaryIO:
        """The kept file, opened for reading (the caller closes it).

        Raises:
            InvalidMediaKey: ``key`` is not of the form :meth:`put` produces.
            FileNotFoundError: nothing is kept under ``key``.
        """
        ...

    async def exists(self, key: str) -> bool:
        """Whether a file is kept under ``key`` (False for a key of the wrong form)."""
        ...


class LocalMediaStore:
    """A :class:`MediaStore` on a local directory (``media_dir``), created if missing.

    Files are written to a temporary name in the directory and linked into place when
    complete, so a reader never sees half a file. Temporary files left by a crash are
    removed when the store is created (if older than a day: another instance may be
    writing). Keys never follow symbolic links: a link in the directory is replaced on
    :meth:`put`, refused by :meth:`open` and reported missing by :meth:`exists`.
    """

    def __init__(self, media_dir: str | os.PathLike[str]) -> None:
        root = Path(media_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._remove_stale_partials()

    async def put(self, source: bytes | AsyncIterable[bytes], mime_type: str) -> StoredMedia:
        """See :meth:`MediaStore.put`; disk work runs in threads, off the event loop."""
        loop = asyncio.get_running_loop()
        partial = self.root / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = await loop.run_in_executor(None, os.open, partial, flags, _FILE_MODE)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in _chunks(source):
                    digest.update(chunk)
                    size += len(chunk)
                    await loop.run_in_executor(None, out.write, chunk)
            key = digest.hexdigest() + extension_for(mime_type)
            await loop.run_in_executor(None, self._commit, partial, self.root / key)
        finally:
            await loop.run_in_executor(None, _unlink_quietly, partial)
        return StoredMedia(key, str(self.root / key), mime_type, size, digest.hexdigest())

    async def open(self, key: str) -> BinaryIO:
        """See :meth:`MediaStore.open`; a symbolic link raises ``OSError`` (ELOOP)."""
        path = self._path(key)
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = await asyncio.get_running_loop().run_in_executor(None, os.open, path, flags)
        return os.fdopen(fd, "rb")

    async def exists(self, key: str) -> bool:
        """See :meth:`MediaStore.exists`: only a regular file counts."""
        try:
            path = self._path(key)
        except InvalidMediaKey:
            return False
        return await asyncio.get_running_loop().run_in_executor(None, _is_regular_file, path)

    def _path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise InvalidMediaKey(f"not a media key: {key!r}")
        return self.root / key

    @staticmethod
    def _commit(partial: Path, final: Path) -> None:
        """Move the complete file into place, unless an identical one is already there."""
        if not _is_regular_file(final):
            os.replace(partial, final)  # replaces a symbolic link itself, never its target

    def _remove_stale_partials(self) -> None:
        cutoff = time.time() - _PARTIAL_MAX_AGE
        for entry in os.scandir(self.root):
            if entry.name.startswith(_PARTIAL_PREFIX):
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime < cutoff:
                    _unlink_quietly(Path(entry.path))


def load_media_store(spec: str | None, media_dir: str) -> MediaStore:
    """The store a deployment configured: ``"package.module:ClassName"`` is imported and
    called without arguments (it reads its own settings, e.g. from the environment);
    None gives a :class:`LocalMediaStore` on ``media_dir``.

    Raises:
        ValueError: ``spec`` is not ``module:Class``, cannot be imported, or does not
            build a :class:`MediaStore`.
    """
    if not spec:
        return LocalMediaStore(media_dir)
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"media_store must be 'package.module:ClassName', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"media_store {spec!r} cannot be loaded: {error}") from error
    store = factory()
    if not isinstance(store, MediaStore):
        raise ValueError(f"media_store {spec!r} has no put/open/exists")
    return store


async def _chunks(source: bytes | AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        for start in range(0, len(data), _CHUNK):
            yield data[start : start + _CHUNK]
        return
    async for chunk in source:
        if chunk:
            yield bytes(chunk)


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
