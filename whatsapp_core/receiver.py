"""Receive webhooks and run the bot turns they bring, in order per conversation.

:meth:`WebhookReceiver.receive` is the webhook path when the Rasa process serves it:
:class:`~whatsapp_core.acceptor.WebhookAcceptor` (verify, parse, durable insert,
statuses), then :meth:`WebhookReceiver.dispatch`, then the answer. When a separate
ingress process accepts (:mod:`whatsapp_core.ingress`), only ``dispatch`` runs here.
Bot turns run afterwards through :class:`~whatsapp_core.ordered.OrderedWorkers`, in
WhatsApp order per conversation across instances (:meth:`WhatsAppStore.start_turn`);
the turn itself is a callback supplied by the Rasa adapter, so this module knows
nothing of Rasa.

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
from whatsapp_core.acceptor import WebhookAcceptor, WebhookResult
from whatsapp_core.config import ChannelConfig
from whatsapp_core.delivery import STUCK_EXPLANATION, DeliveryFailure
from whatsapp_core.masking import mask_phone
from whatsapp_core.media_fetch import MediaFetcher
from whatsapp_core.ordered import OrderedWorkers
from whatsapp_core.outbound import MenuOption, NumberedMenu
from whatsapp_core.read_receipts import BurstReceipts
from whatsapp_core.sender import OutboundSender, ReadReceipt
from whatsapp_core.status_spool import StatusSpool
from whatsapp_core.store import InboxItem, TurnDecision, WhatsAppStore

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
        media: MediaFetcher | None = None,
    ) -> None:
        self.config = config
        self._media = media
        self.store = store
        self.sender = sender
        self._turn = turn
        self._already_handled = already_handled
        self._trigger = trigger
        self.acceptor = WebhookAcceptor(
            config,
            store,
            StatusSpool(config.status_spool_dir) if config.status_spool_dir else None,
            on_failures=lambda failures: self.dispatch([], failures),
        )
        self._turns: OrderedWorkers[InboxItem | ExternalIntent] = OrderedWorkers(
            "whatsapp-turns", self._run_job, key=lambda job: job.conversation_id
        )
        # Bot turns share the event loop with the acks: a bound on those running at once.
        # Waiting for an album or for another instance's earlier message takes no slot.
        self._slots = asyncio.Semaphore(config.max_concurrent_turns)
        self._held: set[str] = set()
        self._receipts = BurstReceipts()
        self._sweeper: asyncio.Task | None = None

    # --------------------------------------------------------------- webhook
    async def receive(self, body: bytes, signature: str | None) -> WebhookResult:
        """Handle one webhook POST body in this process: accept it, then :meth:`dispatch`
        what it brought. Never raises for anything the body contains."""
        accepted = await self.acceptor.accept(body, signature)
        self.dispatch(accepted.new, accepted.failures)
        return accepted.result

    def dispatch(self, new: list[InboxItem], failures: list[DeliveryFailure]) -> None:
        """Queue the turns of newly accepted messages (held by this instance: accepted
        with its id) and trigger the delivery-failure intents; start media downloads."""
        if self._media is not None:  # media (issue #10): fetched in the background
            self._media.submit(new)
        self._queue_turns(new)
        for failure in failures:
            self.submit_external(
                ExternalIntent(
                    failure.conversation_id, DELIVERY_FAILED_INTENT, {"error_code": failure.code}
                )
            )

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
        try:
            await self._run_turn(await self._gather_album(job))
        finally:
            if not self._turns.waiting(job.conversation_id):
                self._receipts.forget(job.conversation_id)

    def _queue_turns(self, items: list[InboxItem]) -> None:
        """Queue turns; their inbox rows are held (claim renewed) until the turn is over."""
        self._held.update(item.message_id for item in items)
        self._turns.submit(items)

    async def _run_turn(self, item: InboxItem, behind: tuple[InboxItem, ...] = ()) -> None:
        """Run ``item``'s turn after every earlier message of its conversation, whichever
        instance accepted those (see :meth:`WhatsAppStore.start_turn`). ``behind``: the
        messages whose turn waits for this one (run first as an earlier message)."""
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
                        await self._take_turn(item, message_ids, start.menu, behind)
                        return
                if start.decision is TurnDecision.SKIP:
                    logger.info(
                        "WhatsApp message %s was taken over or done elsewhere", item.message_id
                    )
                    return
                if start.decision is TurnDecision.EARLIER_FIRST:
                    for earlier in start.earlier:
                        self._held.add(earlier.message_id)
                        await self._run_turn(earlier, (item, *behind))
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
        self,
        item: InboxItem,
        message_ids: list[str],
        menu: list[dict[str, Any]] | None,
        behind: tuple[InboxItem, ...],
    ) -> None:
        item = self._resolve_menu_choice(item, menu)
        if self._media is not None:  # media (issue #10): the download state known now
            item = await self._media.with_download_state(item)
        if self.config.mark_as_read:
            self._mark_read(item, behind)
        await self._turn(item)
        for message_id in message_ids:
            await self.store.mark_done(message_id)

    def _mark_read(self, item: InboxItem, behind: tuple[InboxItem, ...]) -> None:
        """Mark ``item`` read as its turn starts, with the contact's later messages already
        waiting here (``behind`` it, or queued): one receipt covers them all
        (:mod:`whatsapp_core.read_receipts`)."""
        waiting = (*behind, *self._turns.waiting(item.conversation_id))
        target = self._receipts.target(item, waiting)
        if target is not None:
            self.sender.mark_read(
                ReadReceipt(
                    target.phone_number_id,
                    target.recipient,
                    target.message_id,
                    self.config.typing_indicator,
                )
            )

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
        """Start the periodic sweep (recovery every half lease, pruning every hour) and the
        application of spooled statuses."""
        self.acceptor.start()
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
        """Return once spooled statuses are applied, every accepted message has had its
        turn and replies are sent."""
        await self.acceptor.wait_applied()
        await self._turns.wait_idle()
        await self.sender.wait_idle()

    async def stop(self) -> None:
        """Stop sweeping and working; unfinished rows stay in the store for recovery."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.acceptor.stop()
        await self._turns.stop()
        await self.sender.stop()

