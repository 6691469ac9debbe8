import os

from whatsapp_core import status_spool
from whatsapp_core.status_spool import StatusSpool


def reopen(directory) -> tuple[StatusSpool, list[bytes]]:
    spool = StatusSpool(directory)
    replay = spool.open()
    return spool, [body for _, body in replay]


def test_appended_bodies_are_replayed_by_the_next_process_until_applied(tmp_path):
    spool, replay = reopen(tmp_path)
    assert replay == []
    first = spool.append(b"one")
    spool.append(b"two")
    spool.close()
    spool, replay = reopen(tmp_path)
    assert replay == [b"one", b"two"]
    spool.applied(first)
    spool.close()
    spool, replay = reopen(tmp_path)
    assert replay == [b"two"]
    spool.close()


def test_a_record_torn_by_a_crash_is_dropped_and_the_spool_stays_usable(tmp_path):
    spool, _ = reopen(tmp_path)
    spool.append(b"whole")
    path = spool.path
    spool.close()
    with open(path, "ab") as file:
        file.write(b"\x00\x00\x01\x00partial")  # says 256 bytes, holds 7
    spool = StatusSpool(tmp_path)
    [(end, body)] = spool.open()
    assert body == b"whole"
    spool.applied(end)  # the replayed record's offset is where it ends
    end = spool.append(b"next")
    spool.applied(end)
    spool.close()
    assert reopen(tmp_path)[1] == []


def test_processes_on_one_machine_never_share_a_spool(tmp_path):
    first, _ = reopen(tmp_path)
    second, _ = reopen(tmp_path)
    assert first.path != second.path
    first.append(b"a")
    second.append(b"b")
    first.close()
    second.close()
    spools = [reopen(tmp_path), reopen(tmp_path)]
    assert sorted(body for _, replay in spools for body in replay) == [b"a", b"b"]


def test_a_fully_applied_spool_starts_over(tmp_path, monkeypatch):
    monkeypatch.setattr(status_spool, "COMPACT_BYTES", 64)
    spool, _ = reopen(tmp_path)
    end = 0
    for _ in range(10):
        end = spool.append(b"x" * 20)
    assert os.path.getsize(spool.path) == end
    spool.applied(end)
    assert os.path.getsize(spool.path) == 0
    assert spool.append(b"after") == 4 + 5
    spool.close()
    assert reopen(tmp_path)[1] == [b"after"]


def test_the_spool_is_private_to_its_user(tmp_path):
    spool, _ = reopen(tmp_path / "spool")
    assert os.stat(tmp_path / "spool").st_mode & 0o077 == 0
    assert os.stat(spool.path).st_mode & 0o077 == 0
    spool.close()
