"""A local append-only spool for status webhooks: written before the answer, applied after.

Why: a status webhook carries no contact message, and applying it (the outbox row's
state, the status event, a template's ledger settlement) costs several times what
answering Meta does. The acceptor appends the verified body here (one ``write()``)
and answers; an applier writes the statuses to the database in large batches. The
append survives a crash of the process, as SQLite's WAL with ``synchronous=NORMAL``
does (not a power loss): at start-up a process replays what its predecessor appended
but never applied. Statuses are idempotent by (wamid, state), so a replay of statuses
already applied changes nothing.

Files in the spool directory: ``statuses-<n>.spool`` (records: 4-byte big-endian
length, then the body) and ``statuses-<n>.applied`` (the spool offset applied so far).
A process locks one spool (``flock``) for its lifetime, so processes on one machine
(Rasa's port, the ingress process, several instances) never share one, and the spool
of a dead process is taken, replayed and reused by the next process to start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_SPOOLS = 64
COMPACT_BYTES = 4 * 1024 * 1024
"""Once everything is applied and the spool is this large, it starts over empty."""

_LENGTH = struct.Struct(">I")


class SpoolUnavailable(RuntimeError):
    """No spool file could be locked (all ``MAX_SPOOLS`` taken, or the directory unusable)."""


class StatusSpool:
    """One locked spool file of this process; see the module docstring. Not thread-safe:
    append and mark applied from one thread (the event loop)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None
        self._applied_fd: int | None = None
        self._end = 0
        self.path: Path | None = None

    def open(self) -> list[tuple[int, bytes]]:
        """Lock a spool; return the bodies its previous owner appended but never applied,
        each with the offset just past it (for :meth:`applied`)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for n in range(MAX_SPOOLS):
            path = self.directory / f"statuses-{n}.spool"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fd, self.path = fd, path
            self._applied_fd = os.open(path.with_suffix(".applied"), os.O_RDWR | os.O_CREAT, 0o600)
            return self._recover()
        raise SpoolUnavailable(f"all {MAX_SPOOLS} status spools in {self.directory} are in use")

    def _recover(self) -> list[tuple[int, bytes]]:
        raw = os.pread(self._applied_fd, 8, 0)
        applied = int.from_bytes(raw, "big") if len(raw) == 8 else 0
        size = os.fstat(self._fd).st_size
        applied = applied if applied <= size else 0
        bodies: list[tuple[int, bytes]] = []
        offset = applied
        while offset + _LENGTH.size <= size:
            (length,) = _LENGTH.unpack(os.pread(self._fd, _LENGTH.size, offset))
            if offset + _LENGTH.size + length > size:
                break  # a record torn by a crash mid-write: never answered, Meta resends it
            body = os.pread(self._fd, length, offset + _LENGTH.size)
            offset += _LENGTH.size + length
            bodies.append((offset, body))
        os.ftruncate(self._fd, offset)
        self._end = offset
        if bodies:
            logger.info("WhatsApp status spool %s: %d webhook(s) to replay", self.path, len(bodies))
        elif offset == applied:
            self._start_over()
        return bodies

    def append(self, body: bytes) -> int:
        """Append one body; return the spool offset just past it (for :meth:`applied`)."""
        record = _LENGTH.pack(len(body)) + body
        written = os.write(self._fd, record)
        if written != len(record):  # a short write on a full disk: undo, let the caller fail
            os.ftruncate(self._fd, self._end)
            raise OSError(f"status spool: short write ({written} of {len(record)} bytes)")
        self._end += len(record)
        return self._end

    def applied(self, offset: int) -> None:
        """Everything up to ``offset`` is in the database; compact when all of it is."""
        if offset == self._end and self._end >= COMPACT_BYTES:
            self._start_over()
        else:
            os.pwrite(self._applied_fd, offset.to_bytes(8, "big"), 0)

    def _start_over(self) -> None:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._applied_fd, (0).to_bytes(8, "big"), 0)
        self._end = 0

    def close(self) -> None:
        """Release the lock (the file stays, for the next process to replay or reuse)."""
        for fd in (self._applied_fd, self._fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._applied_fd = None
