"""The accepting half of the webhook path: verify, parse, record durably, answer.

:meth:`WebhookAcceptor.accept` is everything a webhook answer waits for: the signature
check on the raw body, parse, normalization, one durable insert of the contact
messages (the insert is the dedup), status updates (with the ledger settlement of
templates) and template-status records. What it accepted (new messages, first-seen
delivery failures) is then handed to :class:`~whatsapp_core.receiver.WebhookReceiver`,
which runs the turns: in the same process, or in the Rasa process when a separate ingress process
accepts (``ingress_port``, see :mod:`whatsapp_core.ingress`). Bad input gets a 4xx and
a log line, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from whatsapp_core.config import ChannelConfig
from whatsapp_core.delivery import DeliveryFailure
from whatsapp_core.errors import lookup
from whatsapp_core.masking import mask_phone
from whatsapp_core.normalize import UnattributableMessage, normalize
from whatsapp_core.signature import verify_signature
from whatsapp_core.status_spool import StatusSpool
from whatsapp_core.store import (
    InboxItem,
    OutboxState,
    StatusChange,
    WhatsAppStore,
)
from whatsapp_core.template_status import record_status, status_update_from_webhook
from whatsapp_core.webhook import (
    Change,
    DeliveryState,
    InvalidWebhook,
    StatusUpdate,
    WebhookEnvelope,
    WebhookField,
    parse_status_only,
)

logger = logging.getLogger(__name__)

Statuses = tuple[StatusUpdate, ...]
"""The statuses of one status-only webhook, as spooled."""

SPOOL_BATCH = 500
"""Spooled webhooks applied per transaction."""
SPOOL_ATTEMPTS = 5
"""Rounds a webhook that cannot be recorded holds up the spool before it is dropped."""
SPOOL_GATHER_SECONDS = 0.01
SPOOL_GATHER_BELOW = 8
"""With fewer than this many webhooks spooled, the applier lets more gather for
``SPOOL_GATHER_SECONDS`` before its transaction: at a few statuses a second each had a
transaction of its own, and on SQLite each held the write lock that the Rasa process's
turns wait for (0.4 ms each, the largest share of that lock's time under load)."""

_OUTBOX_STATE = {
    DeliveryState.SENT: OutboxState.SENT,
    DeliveryState.DELIVERED: OutboxState.DELIVERED,
    DeliveryState.READ: OutboxState.READ,
    DeliveryState.PLAYED: OutboxState.PLAYED,
    DeliveryState.FAILED: OutboxState.FAILED,
}


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """How to answer a webhook POST, and what it carried."""

    http_status: int
    reason: str
    accepted: int = 0
    duplicates: int = 0
    statuses: int = 0


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to a webhook, the contact messages seen for the first time (durably
    recorded, in WhatsApp order) and the delivery failures seen for the first time."""

    result: WebhookResult
    new: list[InboxItem] = field(default_factory=list)
    failures: list[DeliveryFailure] = field(default_factory=list)


class WebhookAcceptor:
    """See the module docstring.

    With a ``spool`` (:mod:`whatsapp_core.status_spool`), a webhook that carries only
    statuses is appended to it and answered; the statuses are applied afterwards, in
    batches, by :meth:`start`'s task, and the delivery failures among them handed to
    ``on_failures``. Without one, statuses are applied before the answer.
    """

    def __init__(
        self,
        config: ChannelConfig,
        store: WhatsAppStore,
        spool: StatusSpool | None = None,
        on_failures: Callable[[list[DeliveryFailure]], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self._spool = spool
        self._on_failures = on_failures
        self._spooled: list[tuple[int, Statuses]] = []
        self._spool_wakeup = asyncio.Event()
        self._spool_idle = asyncio.Event()
        self._spool_idle.set()
        self._applier: asyncio.Task | None = None
        self._spool_attempts = 0
        self._unserved_logged: set[str] = set()

    # ----------------------------------------------------------- status spool
    def start(self) -> None:
        """Open the spool (replaying what a previous process left) and start applying."""
        if self._spool is None or self._applier is not None:
            return
        for offset, body in self._spool.open():
            statuses = parse_status_only(body)
            if statuses is None:
                try:
                    statuses = _statuses_of(WebhookEnvelope.parse(body))
                except InvalidWebhook as error:  # verified when spooled: a changed parser
                    logger.error("WhatsApp status spool: a spooled webhook no longer parses: %s",
                                 error)
                    continue
            self._spooled.append((offset, statuses))
        if self._spooled:
            self._spool_idle.clear()
            self._spool_wakeup.set()
        self._applier = asyncio.create_task(self._apply_spooled(), name="whatsapp-statuses")

    async def stop(self) -> None:
        """Stop applying; what is spooled and not applied is replayed at the next start."""
        if self._applier is not None:
            self._applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._applier
            self._applier = None
        if self._spool is not None:
            self._spool.close()

    async def wait_applied(self) -> None:
        """Return once every spooled status is in the database."""
        await self._spool_idle.wait()

    def _spool_statuses(self, body: bytes, statuses: Statuses) -> Accepted:
        offset = self._spool.append(body)
        self._spooled.append((offset, statuses))
        self._spool_idle.clear()
        self._spool_wakeup.set()
        return Accepted(WebhookResult(200, "ok", statuses=len(statuses)))

    async def _apply_spooled(self) -> None:
        while True:
            await self._spool_wakeup.wait()
            if len(self._spooled) < SPOOL_GATHER_BELOW:
                await asyncio.sleep(SPOOL_GATHER_SECONDS)
            self._spool_wakeup.clear()
            while self._spooled:
                batch = self._spooled[:SPOOL_BATCH]
                try:
                    failures = await self._record_statuses(
                        [status for _, statuses in batch for status in statuses], spooled=True
                    )
                except Exception:  # noqa: BLE001 - one bad webhook, or the database
                    failures = await self._record_one_by_one(batch)
                    if failures is None:
                        continue
                del self._spooled[: len(batch)]
                self._spool.applied(batch[-1][0])
                if failures and self._on_failures is not None:
                    self._on_failures(failures)
            self._spool_idle.set()

    async def _record_one_by_one(
        self, batch: list[tuple[int, Statuses]]
    ) -> list[DeliveryFailure] | None:
        """After a batch failed: each webhook alone; one that fails while others succeed
        is logged and dropped (it would block the spool for ever). When all fail, the
        database is the likely problem: None (the caller tries again), after a second;
        after ``SPOOL_ATTEMPTS`` such rounds in a row the first webhook is dropped, so a
        single unrecordable webhook cannot block the spool either."""
        failures: list[DeliveryFailure] = []
        failed: list[Statuses] = []
        for _offset, statuses in batch:
            try:
                failures += await self._record_statuses(statuses, spooled=True)
            except Exception:  # noqa: BLE001 - logged below
                logger.debug("WhatsApp status webhook not recorded", exc_info=True)
                failed.append(statuses)
        if len(failed) == len(batch):
            self._spool_attempts += 1
            if self._spool_attempts < SPOOL_ATTEMPTS:
                logger.error("WhatsApp statuses could not be applied; retrying in a second")
                await asyncio.sleep(1.0)
                return None
            del batch[1:]  # the caller then removes only the first webhook
            failed = failed[:1]
        self._spool_attempts = 0
        for statuses in failed:
            logger.error(
                "WhatsApp statuses dropped, they cannot be recorded: %s",
                [(status.id, status.state) for status in statuses],
            )
        return failures

    def _only_statuses(self, envelope: WebhookEnvelope) -> bool:
        return bool(envelope.statuses) and all(
            change.route is WebhookField.MESSAGES and not change.messages
            for change in envelope.changes
        )

    async def accept(self, body: bytes, signature: str | None) -> Accepted:
        """Verify, parse and durably record one webhook POST body (never raises for
        anything the body contains); the result says how to answer and what to run."""
        checked = self.check(body, signature)
        return checked if isinstance(checked, Accepted) else await self.record(checked)

    def check(self, body: bytes, signature: str | None) -> Accepted | WebhookEnvelope:
        """The part of :meth:`accept` that waits for nothing: verify and parse; a
        refusal, or a status-only webhook appended to the spool, is answered here (an
        :class:`Accepted`); anything else is returned parsed, for :meth:`record`."""
        if not verify_signature(body, signature, self.config.app_secret):
            logger.warning(
                "WhatsApp webhook refused: %s X-Hub-Signature-256 (%d bytes)",
                "missing" if not signature else "invalid",
                len(body),
            )
            return Accepted(WebhookResult(403, "invalid signature"))
        if self._applier is not None:
            statuses = parse_status_only(body)  # the most common body, parsed cheaply
            if statuses is not None:
                return self._spool_statuses(body, statuses)
        try:
            envelope = WebhookEnvelope.parse(body)
        except InvalidWebhook as error:
            logger.warning("WhatsApp webhook refused: %s", error.reason)
            return Accepted(WebhookResult(error.http_status, error.reason))
        for change in envelope.changes:
            self._route_other(change)
        if self._applier is not None and self._only_statuses(envelope):
            return self._spool_statuses(body, _statuses_of(envelope))
        return envelope

    async def record(self, envelope: WebhookEnvelope) -> Accepted:
        """Durably record a webhook :meth:`check` returned parsed: its contact messages
        (one insert: grouped with other webhooks', or on the ingress process's loop, see
        :class:`~whatsapp_core.store.WhatsAppStore`), statuses and template statuses."""
        items = self._inbox_items(envelope)
        new = await self.store.accept(items) if items else []
        failures = await self._record_statuses(_statuses_of(envelope))
        for change in envelope.changes:
            if change.route is WebhookField.TEMPLATE_STATUS:
                await self._record_template_statuses(change)
        result = WebhookResult(
            200, "ok", len(new), len(items) - len(new), len(envelope.statuses)
        )
        return Accepted(result, new, failures)

    def _serves(self, phone_number_id: str | None) -> bool:
        if self.config.numbers.serves(phone_number_id):
            return True
        if phone_number_id not in self._unserved_logged:
            self._unserved_logged.add(phone_number_id)
            logger.warning(
                "WhatsApp webhook for phone number id %s, which this channel does not serve: "
                "acknowledged and ignored",
                phone_number_id,
            )
        return False

    def _inbox_items(self, envelope: WebhookEnvelope) -> list[InboxItem]:
        received_at = int(time.time())
        items: list[InboxItem] = []
        for change, message in envelope.messages:
            if not self._serves(change.business.phone_number_id):
                continue
            try:
                normalized = normalize(
                    message, change.contact_for(message), change.business, received_at=received_at
                )
            except UnattributableMessage as error:
                logger.error(
                    "WhatsApp message %s of type %s dropped: %s", message.id, message.type, error
                )
                continue
            items.append(
                InboxItem(
                    message_id=normalized.message_id,
                    conversation_id=self.config.numbers.conversation_id(
                        normalized.sender_id, normalized.phone_number_id
                    ),
                    phone_number_id=normalized.phone_number_id,
                    recipient=normalized.recipient,
                    wa_timestamp=normalized.timestamp,
                    opens_window=message.type != "system",
                    text=normalized.text,
                    metadata=normalized.metadata,
                )
            )
        # Meta may batch several messages of one contact: their turns follow WhatsApp's order.
        items.sort(key=lambda item: item.wa_timestamp)
        return items

    async def _record_statuses(
        self, statuses: Sequence[StatusUpdate], *, spooled: bool = False
    ) -> list[DeliveryFailure]:
        """Record every status (one transaction); return the failures seen for the first time."""
        changes = []
        for status in statuses:
            if status.id is None or status.state not in _OUTBOX_STATE:
                logger.info("WhatsApp status without id or with state %s ignored", status.state)
                continue
            error = status.errors[0] if status.errors else None
            changes.append(
                StatusChange(
                    wamid=status.id,
                    state=_OUTBOX_STATE[status.state],
                    recipient=status.recipient_id,
                    wa_timestamp=status.timestamp,
                    error_code=error.code if error else None,
                    error_title=error.title if error else None,
                    error_details=error.details if error else None,
                    pricing=status.pricing or None,
                )
            )
        if not changes:
            return []
        failures = []
        for applied in await self.store.apply_statuses(changes, awaited_by_answer=not spooled):
            change = applied.change
            if change.state is not OutboxState.FAILED:
                continue
            failure = DeliveryFailure.from_error(
                wamid=change.wamid,
                conversation_id=applied.conversation_id,
                code=change.error_code,
                title=change.error_title,
                details=change.error_details,
            )
            logger.warning(
                "WhatsApp message %s to %s failed: code %s (%s) %s",
                change.wamid,
                mask_phone(change.recipient or ""),
                failure.code,
                lookup(failure.code).title,
                failure.meta_details,
            )
            failures.append(failure)
        return failures

    async def _record_template_statuses(self, change: Change) -> None:
        update = status_update_from_webhook(change.value)
        if update is None:
            return
        name, language, event, reason = update
        await self.store.run(lambda c: record_status(c, name, language, event, reason))

    def _route_other(self, change: Change) -> None:
        """Log what is not a contact message or a status, by field."""
        for error in change.errors:
            logger.warning(
                "WhatsApp webhook error for %s: code %s (%s) %s",
                change.business.phone_number_id,
                error.code,
                lookup(error.code).title,
                error.details,
            )
        if change.route is WebhookField.MESSAGES:
            return
        if change.route in (
            WebhookField.TEMPLATE_STATUS,
            WebhookField.TEMPLATE_QUALITY,
            WebhookField.TEMPLATE_CATEGORY,
            WebhookField.TEMPLATE_COMPONENTS,
        ):
            logger.info(
                "WhatsApp template update (%s): %s %s %s",
                change.field,
                change.value.get("message_template_name") or change.value.get("name"),
                change.value.get("message_template_language") or "",
                change.value.get("event") or change.value.get("new_quality_score") or "",
            )
        elif change.route is WebhookField.SMB_MESSAGE_ECHOES:
            logger.info(
                "WhatsApp Business app echo: %d message(s) the business sent from the app",
                _count(change.value.get("message_echoes")),
            )
        else:
            logger.info("WhatsApp '%s' webhook acknowledged", change.field or "?")


def _statuses_of(envelope: WebhookEnvelope) -> Statuses:
    return tuple(status for _change, status in envelope.statuses)


def _count(items: object) -> int:
    """How many items a webhook list holds (0 when Meta's value is not a list)."""
    return len(items) if isinstance(items, list) else 0
