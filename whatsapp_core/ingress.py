"""The webhook (and the Graph API calls) served by a separate ingress process, and its
link to the Rasa process.

Why: the Rasa process runs NLU, policies and Rasa's synchronous tracker store on one
event loop; a webhook answer served there waits for whatever turn step is running
(about 100 ms at the 99th percentile under load, docs/benchmarks.md). With
``ingress_port`` set, the channel starts an ingress process that serves the webhook on
its own port and core: it verifies, parses and durably records each POST
(:class:`~whatsapp_core.acceptor.WebhookAcceptor`, the same code Rasa's port runs), then
answers. It hands the Rasa process what it accepted over a private Unix socket;
the Rasa process runs the turns. The replies go the other way: the Rasa process writes
them to the outbox (durable, with WhatsApp's window rules applied) and hands them to the
ingress process, which makes the Graph API calls (sends, read receipts, media uploads)
and records their outcome, so the Rasa process's event loop does bot turns only.

Durability does not depend on the link: accepted rows are recorded as held by the Rasa
process's instance id, so if a hand-over is lost (the Rasa process restarts, the link
breaks) the rows' claim lapses and the recovery sweep runs them, in order.

Wire format on the link: one JSON object per line. The ingress process first sends
``{"ready": {"host": h, "port": p}}`` once it listens, then ``{"new": [...],
"failures": [...]}`` per webhook that brought something to run, and
``{"template_failure": {...}}`` when a template could not be sent. The Rasa process
sends ``{"deliver": [{"outbox": {...}} | {"read": {...}}]}``; while the link is down it
delivers itself. The ingress process exits when the link closes (the Rasa process is
gone); the Rasa process restarts an ingress process that exits while the channel runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from whatsapp_core.delivery import DeliveryFailure
from whatsapp_core.sender import ReadReceipt
from whatsapp_core.store import InboxItem, OutboxItem

logger = logging.getLogger(__name__)

LINE_LIMIT = 16 * 1024 * 1024
"""Largest line on the link (a 4 MB webhook body normalizes to well under this)."""

RESTART_DELAY_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 5.0

Dispatch = Callable[[list[InboxItem], list[DeliveryFailure]], None]
TemplateFailure = Callable[[str, "str | None", str], None]
Deliver = Callable[[list["OutboxItem | ReadReceipt"]], None]


def _fields(item: InboxItem | OutboxItem | ReadReceipt) -> dict[str, Any]:
    """The item's fields, one level deep: ``dataclasses.asdict`` deep-copies the nested
    values first (52 us for an inbox item with its metadata, measured), which
    ``json.dumps`` then walks anyway."""
    return {name: getattr(item, name) for name in item.__slots__}


def encode_accepted(new: Sequence[InboxItem], failures: Sequence[DeliveryFailure]) -> bytes:
    """One link line for what a webhook brought."""
    payload = {
        "new": [_fields(item) for item in new],
        "failures": [
            {
                "wamid": failure.wamid,
                "conversation_id": failure.conversation_id,
                "code": failure.code,
                "title": failure.meta_title,
                "details": failure.meta_details,
            }
            for failure in failures
        ],
    }
    return json.dumps(payload, default=str).encode() + b"\n"


def decode_accepted(line: bytes) -> tuple[list[InboxItem], list[DeliveryFailure]]:
    """The inverse of :func:`encode_accepted`; raises ``ValueError`` on a malformed line."""
    payload = json.loads(line)
    try:
        new = [InboxItem(**item) for item in payload["new"]]
        failures = [DeliveryFailure.from_error(**failure) for failure in payload["failures"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"malformed ingress line: {error}") from None
    return new, failures


def encode_deliveries(jobs: Sequence[OutboxItem | ReadReceipt]) -> bytes:
    """One link line handing replies and read receipts to the ingress process."""
    encoded = [
        {"read": _fields(job)} if isinstance(job, ReadReceipt) else {"outbox": _fields(job)}
        for job in jobs
    ]
    return json.dumps({"deliver": encoded}, default=str).encode() + b"\n"


def decode_deliveries(line: bytes) -> list[OutboxItem | ReadReceipt]:
    """The inverse of :func:`encode_deliveries`; raises ``ValueError`` on a malformed line."""
    try:
        return [
            ReadReceipt(**job["read"]) if "read" in job else OutboxItem(**job["outbox"])
            for job in json.loads(line)["deliver"]
        ]
    except (KeyError, TypeError) as error:
        raise ValueError(f"malformed delivery line: {error}") from None


class IngressProcess:
    """Starts and supervises the ingress process from the Rasa process; see module doc.

    ``command`` starts the process (e.g. ``[sys.executable, "-m", "connectors.whatsapp_ingress"]``);
    ``settings`` (JSON-serializable, may hold secrets) reach it on its standard input, never
    on its command line or environment, and gain ``link``: the Unix socket path.
    ``dispatch`` receives what the ingress process accepted, on this event loop, and
    ``template_failure`` the templates it could not send; :meth:`deliver` hands it replies.
    """

    def __init__(
        self,
        command: Sequence[str],
        settings: dict[str, Any],
        dispatch: Dispatch,
        template_failure: TemplateFailure,
    ):
        self._command = list(command)
        self._settings = settings
        self._dispatch = dispatch
        self._template_failure = template_failure
        self._writer: asyncio.StreamWriter | None = None
        self._dir: tempfile.TemporaryDirectory | None = None
        self._server: asyncio.AbstractServer | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task | None = None
        self._readers: set[asyncio.Task] = set()
        self._stopping = False
        self.ready = asyncio.Event()
        self.address: tuple[str, int] | None = None

    @property
    def pid(self) -> int | None:
        """The running ingress process's pid (None when none runs)."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Open the link and start the ingress process (returns without waiting for it)."""
        self._dir = tempfile.TemporaryDirectory(prefix="whatsapp-ingress-")
        os.chmod(self._dir.name, 0o700)  # only this user may connect and inject turns
        path = str(Path(self._dir.name) / "link.sock")
        self._server = await asyncio.start_unix_server(self._serve_link, path, limit=LINE_LIMIT)
        self._settings = {**self._settings, "link": path}
        self._supervisor = asyncio.create_task(self._supervise(), name="whatsapp-ingress")

    async def _supervise(self) -> None:
        while not self._stopping:
            self._process = await asyncio.create_subprocess_exec(
                *self._command, stdin=asyncio.subprocess.PIPE
            )
            self._process.stdin.write(json.dumps(self._settings).encode())
            await self._process.stdin.drain()
            self._process.stdin.close()
            code = await self._process.wait()
            self.ready.clear()
            if self._stopping:
                return
            logger.error(
                "WhatsApp ingress process exited with code %s; restarting in %.0f s "
                "(Rasa's port still serves the webhook)",
                code,
                RESTART_DELAY_SECONDS,
            )
            await asyncio.sleep(RESTART_DELAY_SECONDS)

    async def _serve_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._readers.add(task)
        try:
            while line := await reader.readline():
                self._handle_line(line, writer)
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as error:
            logger.error("WhatsApp ingress link broken: %s", error)
        finally:
            self._readers.discard(task)
            if self._writer is writer:
                self._writer = None
            writer.close()

    def deliver(self, jobs: list[OutboxItem | ReadReceipt]) -> bool:
        """Hand replies and read receipts to the ingress process; False when the link is
        down (the caller delivers them itself)."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        writer.write(encode_deliveries(jobs))
        return True

    def _handle_line(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        if line.startswith(b'{"ready"'):
            ready = json.loads(line)["ready"]
            self.address = (ready["host"], int(ready["port"]))
            self._writer = writer
            self.ready.set()
            logger.info("WhatsApp ingress process listening on %s:%s", *self.address)
            return
        if line.startswith(b'{"template_failure"'):
            failure = json.loads(line)["template_failure"]
            self._template_failure(
                failure["conversation_id"], failure["phone_number_id"], failure["reason"]
            )
            return
        try:
            new, failures = decode_accepted(line)
        except ValueError as error:  # the rows are durable: the recovery sweep runs them
            logger.error("WhatsApp ingress line dropped (%s); recovery will run its turns", error)
            return
        self._dispatch(new, failures)

    async def stop(self) -> None:
        """Stop the ingress process (SIGTERM, then SIGKILL) and close the link."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._readers):
            task.cancel()
        if self._dir is not None:
            self._dir.cleanup()


class IngressLink:
    """The ingress process's end of the link: announce readiness, forward what was accepted,
    hand the replies it receives to ``deliver``, and tell when the Rasa process is gone
    (``closed`` is set)."""

    def __init__(self, path: str, deliver: Deliver) -> None:
        self._path = path
        self._deliver = deliver
        self._writer: asyncio.StreamWriter | None = None
        self.closed = asyncio.Event()

    async def connect(self, host: str, port: int) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self._path, limit=LINE_LIMIT)
        self._writer.write(json.dumps({"ready": {"host": host, "port": port}}).encode() + b"\n")
        await self._writer.drain()
        asyncio.create_task(self._watch(reader), name="whatsapp-ingress-link")

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                try:
                    self._deliver(decode_deliveries(line))
                except ValueError as error:  # durable rows: recovered after their lease
                    logger.error("WhatsApp ingress: delivery line dropped (%s)", error)
        except (ConnectionError, asyncio.LimitOverrunError) as error:
            logger.error("WhatsApp ingress: link to the Rasa process broken: %s", error)
        self.closed.set()  # EOF: the Rasa process is gone

    def template_failure(self, conversation_id: str, phone_number_id: str | None, reason: str):
        """Tell the Rasa process a template could not be sent (it triggers the intent)."""
        if self._writer is not None and not self._writer.is_closing():
            failure = {
                "conversation_id": conversation_id,
                "phone_number_id": phone_number_id,
                "reason": reason,
            }
            self._writer.write(json.dumps({"template_failure": failure}).encode() + b"\n")

    def forward(self, new: Sequence[InboxItem], failures: Sequence[DeliveryFailure]) -> None:
        """Hand what a webhook brought to the Rasa process (never raises: the rows are
        durable and recovered if this line is lost)."""
        if not new and not failures:
            return
        if self._writer is None or self._writer.is_closing():
            logger.warning(
                "WhatsApp ingress: link to the Rasa process is down; %d message(s) left to "
                "its recovery sweep",
                len(new),
            )
            return
        self._writer.write(encode_accepted(new, failures))


def python_module_command(module: str) -> list[str]:
    """The command that runs ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module]
