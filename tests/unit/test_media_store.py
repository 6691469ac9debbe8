"""The media store (whatsapp_core.media_store): content-addressed keys, dedup, aborted
writes, and keys that never become paths outside the directory."""

from __future__ import annotations

import hashlib
import io
import os
import time

import pytest

from whatsapp_core.media_store import (
    InvalidMediaKey,
    LocalMediaStore,
    MediaStore,
    StoredMedia,
    extension_for,
    load_media_store,
    mime_for_extension,
)

DATA = b"\xff\xd8\xff\xe0 a jpeg, more or less " * 100


class MemoryStore:
    """A store kept in memory: what a deployment's own store looks like to the loader."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def put(self, source, mime_type: str) -> StoredMedia:
        data = source if isinstance(source, bytes) else b"".join([c async for c in source])
        digest = hashlib.sha256(data).hexdigest()
        key = digest + extension_for(mime_type)
        self.files[key] = data
        return StoredMedia(key, f"memory://{key}", mime_type, len(data), digest)

    async def open(self, key: str):
        return io.BytesIO(self.files[key])

    async def exists(self, key: str) -> bool:
        return key in self.files


async def chunks(*parts: bytes):
    for part in parts:
        yield part


def entries(store: LocalMediaStore) -> list[str]:
    return sorted(os.listdir(store.root))


async def test_put_names_the_file_by_its_hash_and_mime_extension(tmp_path):
    store = LocalMediaStore(tmp_path / "media")
    stored = await store.put(DATA, "image/jpeg")
    digest = hashlib.sha256(DATA).hexdigest()
    assert stored == StoredMedia(
        f"{digest}.jpg", str(store.root / f"{digest}.jpg"), "image/jpeg", len(DATA), digest
    )
    assert (store.root / stored.key).read_bytes() == DATA
    assert entries(store) == [stored.key]


async def test_a_stream_is_stored_like_bytes(tmp_path):
    store = LocalMediaStore(tmp_path)
    stored = await store.put(chunks(DATA[:10], b"", DATA[10:]), "audio/ogg; codecs=opus")
    assert stored.key == hashlib.sha256(DATA).hexdigest() + ".ogg"
    with await store.open(stored.key) as file:
        assert file.read() == DATA


async def test_the_same_bytes_are_stored_once(tmp_path):
    store = LocalMediaStore(tmp_path)
    first = await store.put(DATA, "image/jpeg")
    inode = os.stat(first.location).st_ino
    second = await store.put(chunks(DATA), "image/jpeg")
    assert second == first
    assert entries(store) == [first.key]
    assert os.stat(first.location).st_ino == inode  # not written again


async def test_a_source_that_raises_stores_nothing(tmp_path):
    store = LocalMediaStore(tmp_path)

    async def broken():
        yield DATA
        raise RuntimeError("hash mismatch")

    with pytest.raises(RuntimeError, match="hash mismatch"):
        await store.put(broken(), "image/jpeg")
    assert entries(store) == []


@pytest.mark.parametrize(
    "key",
    [
        "../escape.jpg",
        "/etc/passwd",
        "sub/" + "a" * 64 + ".jpg",
        "a" * 64 + ".jpg/..",
        "A" * 64 + ".jpg",
        "a" * 63 + ".jpg",
        "a" * 64,
        ".partial-" + "a" * 32,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdC",
    ],
)
async def test_keys_the_store_did_not_make_are_refused(tmp_path, key):
    store = LocalMediaStore(tmp_path)
    with pytest.raises(InvalidMediaKey):
        await store.open(key)
    assert await store.exists(key) is False


async def test_a_symbolic_link_is_never_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    store = LocalMediaStore(tmp_path / "media")
    key = hashlib.sha256(DATA).hexdigest() + ".jpg"
    (store.root / key).symlink_to(outside)

    assert await store.exists(key) is False
    with pytest.raises(OSError):
        await store.open(key)

    stored = await store.put(DATA, "image/jpeg")  # the link is replaced, its target untouched
    assert stored.key == key
    assert not (store.root / key).is_symlink()
    assert (store.root / key).read_bytes() == DATA
    assert outside.read_bytes() == b"secret"


async def test_open_of_a_missing_key_raises_file_not_found(tmp_path):
    store = LocalMediaStore(tmp_path)
    with pytest.raises(FileNotFoundError):
        await store.open("b" * 64 + ".pdf")


def test_partial_files_left_by_a_crash_are_removed_when_old(tmp_path):
    old, fresh = tmp_path / ".partial-old", tmp_path / ".partial-fresh"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    LocalMediaStore(tmp_path)
    assert not old.exists()
    assert fresh.exists()


def test_mime_types_and_extensions():
    assert extension_for("image/jpeg") == ".jpg"
    assert extension_for("Audio/OGG; codecs=opus") == ".ogg"
    assert extension_for("application/x-msdownload") == ".bin"
    assert mime_for_extension(".PDF") == "application/pdf"
    assert mime_for_extension(".jpeg") == "image/jpeg"
    assert mime_for_extension(".exe") is None


def test_the_local_store_is_the_default_and_a_deployment_can_name_its_own(tmp_path):
    default = load_media_store(None, str(tmp_path / "media"))
    assert isinstance(default, LocalMediaStore)
    assert default.root == (tmp_path / "media").resolve()
    own = load_media_store("tests.unit.test_media_store:MemoryStore", str(tmp_path))
    assert type(own).__name__ == "MemoryStore"
    assert isinstance(own, MediaStore)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("MemoryStore", "package.module:ClassName"),
        ("no_such_module_here:Store", "cannot be loaded"),
        ("collections:NoSuchClass", "cannot be loaded"),
        ("collections:OrderedDict", "has no put/open/exists"),
    ],
)
def test_a_bad_store_name_fails_with_the_reason(tmp_path, spec, problem):
    with pytest.raises(ValueError, match=problem):
        load_media_store(spec, str(tmp_path))
