"""Receive webhooks: verify, parse, accept durably, answer, then run the turns.

:meth:`WebhookReceiver.receive` is the whole webhook path and the only code on it:
signature check on the raw body, parse, normalize, one durable insert for the
batch (the insert is the dedup), status updates, then the answer. Bot turns run
afterwards through :class:`~whatsapp_core.ordered.OrderedWorkers`, in order per
conversation; the turn itself is a callback supplied by the Rasa adapter, so this
module knows nothing of Rasa.

Guarantees: a wamid gives at most one turn (also across restarts and instances
sharing the database); an accepted message gets its turn even when the process
dies right after the ack (rows not finished within the lease are claimed again
at start-up and by a periodic sweep); bad input gets a 4xx and a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from whatsapp_core import albums, followups
from whatsapp_core.config import ChannelConfig
from whatsapp_core.delivery import STUCK_EXPLANATION, DeliveryFailure
from whatsapp_core.errors import lookup
from whatsapp_core.masking import mask_phone
from whatsapp_core.media_fetch import MediaFetcher
from whatsapp_core.normalize import UnattributableMessage, normalize
from whatsapp_core.ordered import OrderedWorkers
from whatsapp_core.outbound import MenuOption, NumberedMenu
from whatsapp_core.send_rules import SendRules
from whatsapp_core.sender import OutboundSender, ReadReceipt
from whatsapp_core.signature import verify_signature
from whatsapp_core.store import (
    AppliedStatus,
    InboxItem,
    OutboxState,
    StatusChange,
    TurnDecision,
    WhatsAppStore,
)
from whatsapp_core.template_status import record_status, status_update_from_webhook
from whatsapp_core.webhook import (
    Change,
    DeliveryState,
    InvalidWebhook,
    WebhookEnvelope,
    WebhookField,
)

logger = logging.getLogger(__name__)

DELIVERY_FAILED_INTENT = "whatsapp_delivery_failed"
FOLLOW_UP_INTENT = "whatsapp_follow_up"
TEMPLATE_FAILED_INTENT = "whatsapp_template_failed"

ORDER_POLL_FIRST_SECONDS = 0.02
ORDER_POLL_MAX_SECONDS = 0.5
"""How often a turn waiting for another instance's earlier message looks again."""


@dataclass(frozen=True, slots=True)
class ExternalIntent:
    """An intent the channel triggers in a conversation (never a contact message: it does
    not open the window). Runs in order with the conversation's turns."""

    conversation_id: str
    intent: str
    entities: dict[str, Any]
    phone_number_id: str | None = None


TurnCallback = Callable[[InboxItem], Awaitable[None]]
HandledCheck = Callable[[InboxItem], Awaitable[bool]]
TriggerCallback = Callable[[ExternalIntent], Awaitable[None]]

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


class WebhookReceiver:
    """The inbound half of the channel; see the module docstring."""

    def __init__(
        self,
        config: ChannelConfig,
        store: WhatsAppStore,
        sender: OutboundSender,
        turn: TurnCallback,
        already_handled: HandledCheck | None = None,
        trigger: TriggerCallback | None = None,
        rules: SendRules | None = None,
        media: MediaFetcher | None = None,
    ) -> None:
        self.config = config
        self._media = media
        self.store = store
        self.sender = sender
        self._turn = turn
        self._already_handled = already_handled
        self._trigger = trigger
        self._rules = rules
        self._turns: OrderedWorkers[InboxItem | ExternalIntent] = OrderedWorkers(
            "whatsapp-turns", self._run_job, key=lambda job: job.conversation_id
        )
        # Bot turns share the event loop with the acks: a bound on those running at once.
        # Waiting for an album or for another instance's earlier message takes no slot.
        self._slots = asyncio.Semaphore(config.max_concurrent_turns)
        self._unserved_logged: set[str] = set()
        self._held: set[str] = set()
        self._sweeper: asyncio.Task | None = None

    # --------------------------------------------------------------- webhook
    async def receive(self, body: bytes, signature: str | None) -> WebhookResult:
        """Handle one webhook POST body; never raises for anything the body contains."""
        if not verify_signature(body, signature, self.config.app_secret):
            logger.warning(
                "WhatsApp webhook refused: %s X-Hub-Signature-256 (%d bytes)",
                "missing" if not signature else "invalid",
                len(body),
            )
            return WebhookResult(403, "invalid signature")
        try:
            envelope = WebhookEnvelope.parse(body)
        except InvalidWebhook as error:
            logger.warning("WhatsApp webhook refused: %s", error.reason)
            return WebhookResult(error.http_status, error.reason)

        items = self._inbox_items(envelope)
        new = await self.store.accept(items) if items else []
        failures = await self._record_statuses(envelope)
        for change in envelope.changes:
            self._route_other(change)
            if change.route is WebhookField.TEMPLATE_STATUS:
                await self._record_template_statuses(change)
        if self._media is not None:  # media (issue #10): fetched in the background
            self._media.submit(new)
        self._queue_turns(new)
        for failure in failures:
            self.submit_external(
                ExternalIntent(
                    failure.conversation_id, DELIVERY_FAILED_INTENT, {"error_code": failure.code}
                )
            )
        return WebhookResult(200, "ok", len(new), len(items) - len(new), len(envelope.statuses))

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

    async def _record_statuses(self, envelope: WebhookEnvelope) -> list[DeliveryFailure]:
        """Record every status; return the failures seen for the first time."""
        changes = []
        for _change, status in envelope.statuses:
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
        for applied in await self.store.apply_statuses(changes):
            change = applied.change
            await self._settle(applied)
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

    async def _settle(self, applied: AppliedStatus) -> None:
        """Settle a template's ledger reservation from Meta's pricing (or release it)."""
        if self._rules is None:
            return
        change = applied.change
        if change.pricing:
            await self._rules.settle(change.wamid, change.pricing)
        elif change.state is OutboxState.FAILED and applied.outbox_id is not None:
            await self._rules.release(applied.outbox_id, f"failed {change.error_code}")

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

    # ----------------------------------------------------------------- turns
    def submit_external(self, intent: ExternalIntent) -> None:
        """Trigger ``intent`` after the conversation's queued turns (if a trigger is wired)."""
        if self._trigger is not None:
            self._turns.submit([intent])

    async def _gather_album(self, job: InboxItem) -> InboxItem:
        """Wait briefly after a photo/video and merge the album it starts into one turn."""
        window = self.config.album_window_seconds
        if window <= 0 or not albums.is_album_part(job):
            return job
        await asyncio.sleep(window)
        more = self._turns.take(
            job.conversation_id,
            lambda other: isinstance(other, InboxItem) and albums.same_album(job, other, window),
        )
        return albums.merge_album([job, *more])

    async def _run_job(self, job: InboxItem | ExternalIntent) -> None:
        """A contact's turn, or an intent the channel triggers, in conversation order."""
        if isinstance(job, ExternalIntent):
            if self._trigger is not None:
                async with self._slots:
                    await self._trigger(job)
            return
        await self._run_turn(await self._gather_album(job))

    def _queue_turns(self, items: list[InboxItem]) -> None:
        """Queue turns; their inbox rows are held (claim renewed) until the turn is over."""
        self._held.update(item.message_id for item in items)
        self._turns.submit(items)

    async def _run_turn(self, item: InboxItem) -> None:
        """Run ``item``'s turn after every earlier message of its conversation, whichever
        instance accepted those (see :meth:`WhatsAppStore.start_turn`)."""
        message_ids = albums.message_ids(item)
        is_text = item.metadata.get("whatsapp", {}).get("type") == "text"
        delay = ORDER_POLL_FIRST_SECONDS
        try:
            while True:
                async with self._slots:
                    start = await self.store.start_turn(
                        item.conversation_id,
                        message_ids,
                        take_menu=is_text,
                        lease_seconds=self.config.recovery_lease_seconds,
                    )
                    if start.decision is TurnDecision.RUN:
                        await self._take_turn(item, message_ids, start.menu)
                        return
                if start.decision is TurnDecision.SKIP:
                    logger.info(
                        "WhatsApp message %s was taken over or done elsewhere", item.message_id
                    )
                    return
                if start.decision is TurnDecision.EARLIER_FIRST:
                    for earlier in start.earlier:
                        self._held.add(earlier.message_id)
                        await self._run_turn(earlier)
                    delay = ORDER_POLL_FIRST_SECONDS
                    continue
                logger.debug(
                    "WhatsApp message %s waits for an earlier message held by another instance",
                    item.message_id,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, ORDER_POLL_MAX_SECONDS)
        finally:
            self._held.difference_update(message_ids)

    async def _take_turn(
        self, item: InboxItem, message_ids: list[str], menu: list[dict[str, Any]] | None
    ) -> None:
        item = self._resolve_menu_choice(item, menu)
        if self._media is not None:  # media (issue #10): the download state known now
            item = await self._media.with_download_state(item)
        readable = item.phone_number_id and item.message_id.startswith("wamid.")
        if self.config.mark_as_read and readable:
            self.sender.mark_read(
                ReadReceipt(
                    item.phone_number_id,
                    item.recipient,
                    item.message_id,
                    self.config.typing_indicator,
                )
            )
        await self._turn(item)
        for message_id in message_ids:
            await self.store.mark_done(message_id)

    @staticmethod
    def _resolve_menu_choice(item: InboxItem, options: list[dict[str, Any]] | None) -> InboxItem:
        """Map a reply to a numbered text menu ("2") back to that option's payload."""
        if not options:
            return item
        menu = NumberedMenu(
            tuple(MenuOption(o["number"], o["title"], o["payload"]) for o in options)
        )
        payload = menu.resolve(item.text)
        return replace(item, text=payload) if payload else item

    async def recover(self) -> int:
        """Claim accepted-but-unfinished messages and queued replies; return how many."""
        lease = self.config.recovery_lease_seconds
        items = await self.store.claim_stale(lease)
        pending = []
        for item in items:
            if self._already_handled is not None and await self._already_handled(item):
                await self.store.mark_done(item.message_id)
            else:
                pending.append(item)
        self._queue_turns(pending)
        replies = await self.store.claim_stale_outbound(lease)
        self.sender.resume(replies)
        if pending or replies:
            logger.info(
                "WhatsApp recovery: %d message(s) and %d repl(ies) taken over",
                len(pending),
                len(replies),
            )
        return len(pending) + len(replies)

    def start(self) -> None:
        """Start the periodic sweep: recovery every half lease, pruning every hour."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="whatsapp-sweeper")

    async def _sweep(self) -> None:
        retention = self.config.dedup_retention_days * 86400
        last_prune = 0.0
        while True:
            try:
                await self.store.renew(self._held)
                await self.recover()
                for record in await self.store.flag_stuck(self.config.stuck_after_seconds):
                    logger.warning(
                        "WhatsApp message %s to %s was sent %d s ago and never delivered: %s",
                        record.wamid,
                        mask_phone(record.recipient),
                        int(time.time() - record.updated_at),
                        STUCK_EXPLANATION,
                    )
                for conversation_id, phone_number_id in await self.store.run(followups.claim_due):
                    self.submit_external(
                        ExternalIntent(conversation_id, FOLLOW_UP_INTENT, {}, phone_number_id)
                    )
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    await self.store.prune(retention)
            except Exception:  # noqa: BLE001 - the sweeper must outlive a database hiccup
                logger.exception("WhatsApp recovery sweep failed")
            await asyncio.sleep(max(self.config.recovery_lease_seconds / 2, 0.5))

    async def wait_idle(self) -> None:
        """Return once every accepted message has had its turn and replies are sent."""
        await self._turns.wait_idle()
        await self.sender.wait_idle()

    async def stop(self) -> None:
        """Stop sweeping and working; unfinished rows stay in the store for recovery."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self._turns.stop()
        await self.sender.stop()


def _count(items: object) -> int:
    """How many items a webhook list holds (0 when Meta's value is not a list)."""
    return len(items) if isinstance(items, list) else 0
