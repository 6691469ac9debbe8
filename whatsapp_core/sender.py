"""Deliver replies: durable outbox → Graph API → recorded outcome, in order per contact.

A reply is first written to the outbox (so a crash does not lose it), then sent by a
per-recipient worker, off the bot turn: the turn never waits on Meta's latency, and
a slow or throttled contact never holds up another. Every outcome is recorded with
its wamid (so status webhooks find it later) or with Meta's error code; a failed
send is logged with the catalogue's meaning and never raised into Rasa.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from whatsapp_core import followups
from whatsapp_core.config import ChannelConfig
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.masking import mask_phone
from whatsapp_core.media_upload import LocalMediaUploader
from whatsapp_core.ordered import OrderedWorkers
from whatsapp_core.outbound import OutboundKind, OutboundMessage
from whatsapp_core.reopening import TemplateResources
from whatsapp_core.send_rules import Screened, SendRules
from whatsapp_core.store import OutboxItem, OutboxState, WhatsAppStore, replace_menu
from whatsapp_core.templates import TemplateCatalogue

logger = logging.getLogger(__name__)


def asks_something(message: OutboundMessage) -> bool:
    """Does the message wait for an answer (choices, or text ending with a question)?"""
    if message.kind in (
        OutboundKind.INTERACTIVE_BUTTONS, OutboundKind.INTERACTIVE_LIST, OutboundKind.MENU
    ):
        return True
    if message.kind is OutboundKind.TEXT:
        return str(message.body.get("text", {}).get("body", "")).rstrip().endswith("?")
    return False


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """Mark a contact's message as read (and show the typing indicator)."""

    phone_number_id: str
    recipient: str
    message_id: str
    typing_indicator: bool


class OutboundSender:
    """Queue, send and record outbound messages; see the module docstring."""

    def __init__(
        self,
        store: WhatsAppStore,
        graph: GraphClient,
        *,
        access_token_for: Callable[[str | None], str],
        default_phone_number_id: str,
        rules: SendRules | None = None,
        on_template_failure: Callable[[str, str | None, str], None] | None = None,
        follow_up_after_seconds: float = 0,
        media: LocalMediaUploader | None = None,
    ) -> None:
        self._store = store
        self._media = media
        self._graph = graph
        self._token_for = access_token_for
        self._default_phone_number_id = default_phone_number_id
        self._rules = rules
        self._on_template_failure = on_template_failure
        self._follow_up_after = follow_up_after_seconds
        self._workers: OrderedWorkers[OutboxItem | ReadReceipt] = OrderedWorkers(
            "whatsapp-outbound", self._deliver, key=lambda job: job.recipient
        )
        self._hand_off: Callable[[list[OutboxItem | ReadReceipt]], bool] | None = None
        self._held: set[int] = set()
        self._renewer: asyncio.Task | None = None

    def hand_off_to(self, hand_off: Callable[[list[OutboxItem | ReadReceipt]], bool] | None):
        """Let ``hand_off`` deliver queued rows and read receipts (another process does the
        Graph calls: the ingress process). It returns False when it cannot take them (the
        link is down); they are then delivered here. None: deliver here."""
        self._hand_off = hand_off

    def _submit(self, jobs: list[OutboxItem | ReadReceipt]) -> None:
        if self._hand_off is not None and self._hand_off(jobs):
            return
        self._held.update(job.id for job in jobs if isinstance(job, OutboxItem))
        self._workers.submit(jobs)

    def start(self, renew_every_seconds: float) -> None:
        """Renew the claim on the outbox rows this process holds queued, every
        ``renew_every_seconds`` (half the recovery lease): however long a contact's queue
        (throttling, retries), the recovery sweep never hands them out a second time."""
        if self._renewer is None:
            self._renewer = asyncio.create_task(
                self._renew(renew_every_seconds), name="whatsapp-outbox-claims"
            )

    async def _renew(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self._store.renew_outbound(list(self._held))
            except Exception:  # noqa: BLE001 - tried again at the next round
                logger.exception("WhatsApp: could not renew the claim on queued replies")

    async def send(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        messages: Sequence[OutboundMessage],
    ) -> list[OutboxItem]:
        """Durably queue ``messages`` for ``recipient`` and start sending them in order.

        Returns once they are in the outbox, not when Meta answered. WhatsApp's rules
        apply first (:mod:`whatsapp_core.send_rules`): free-form messages outside the
        window become the re-engagement template or are held, with the reason on the
        timeline. A numbered menu among them is remembered for the conversation, so the
        contact's reply "2" maps back to the second option's payload. When the last
        message asks something, a follow-up is scheduled. All of it is one transaction.
        """
        phone_number_id = phone_number_id or self._default_phone_number_id

        def queue(
            connection: Connection, catalogue: TemplateCatalogue | None
        ) -> tuple[Screened, list[OutboxItem]]:
            screened = (
                self._rules.screen_in(
                    connection, conversation_id, phone_number_id, messages, catalogue
                )
                if self._rules is not None
                else Screened(tuple(messages))
            )
            if screened.needs_catalogue:
                return screened, []
            if screened.held:
                self._store.insert_unsent(
                    connection,
                    conversation_id,
                    phone_number_id,
                    recipient,
                    [
                        (m.kind.value, m.to_payload(recipient), OutboxState.HELD, reason, "")
                        for m, reason in screened.held
                    ],
                )
            sending = screened.send
            if not sending:
                return screened, []
            queued = self._store.insert_outbound(
                connection,
                conversation_id,
                phone_number_id,
                recipient,
                [(message.kind.value, message.to_payload(recipient)) for message in sending],
            )
            for message in sending:
                if message.menu is not None:
                    replace_menu(
                        connection,
                        conversation_id,
                        [
                            {"number": o.number, "title": o.title, "payload": o.payload}
                            for o in message.menu.options
                        ],
                    )
            if self._follow_up_after > 0 and asks_something(sending[-1]):
                followups.schedule(
                    connection, conversation_id, phone_number_id, self._follow_up_after
                )
            return screened, queued

        screened, queued = await self._store.run_short(lambda c: queue(c, None))
        if screened.needs_catalogue and self._rules is not None:
            # the window is closed: the template is prepared from the catalogue, which
            # is read off the event loop, then the reply is screened again
            catalogue = await self._rules.catalogue()
            screened, queued = await self._store.run_short(lambda c: queue(c, catalogue))
        if screened.held:
            logger.info(
                "WhatsApp: %d message(s) to %s held: %s",
                len(screened.held),
                mask_phone(recipient),
                screened.held[0][1],
            )
        if screened.template_failure is not None:
            self._report_template_failure(
                conversation_id, phone_number_id, screened.template_failure
            )
        self._submit(queued)
        return queued

    def _report_template_failure(
        self, conversation_id: str, phone_number_id: str | None, reason: str
    ) -> None:
        if self._on_template_failure is not None:
            self._on_template_failure(conversation_id, phone_number_id, reason)

    async def record_invalid(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        response: dict,
        reason: str,
    ) -> None:
        """Record a response that could not be turned into a valid message, unsent."""
        await self._store.record_unsent(
            conversation_id,
            phone_number_id or self._default_phone_number_id,
            recipient,
            [("invalid", {"response": response}, OutboxState.FAILED, "invalid response", reason)],
        )

    def resume(self, jobs: Sequence[OutboxItem | ReadReceipt]) -> None:
        """Send outbox rows already durable (recovered after a crash, or handed over by
        another process) and read receipts."""
        self._submit(list(jobs))

    def mark_read(self, receipt: ReadReceipt) -> None:
        """Queue a read receipt ahead of the replies the coming turn will produce."""
        self._submit([receipt])

    async def wait_idle(self) -> None:
        """Return once everything queued so far has been sent or recorded as failed."""
        await self._workers.wait_idle()

    async def stop(self) -> None:
        """Stop sending; queued rows stay in the outbox for recovery."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await self._workers.stop()

    async def _deliver(self, job: OutboxItem | ReadReceipt) -> None:
        try:
            await self._deliver_now(job)
        finally:
            if isinstance(job, OutboxItem):
                self._held.discard(job.id)

    async def _deliver_now(self, job: OutboxItem | ReadReceipt) -> None:
        if isinstance(job, ReadReceipt):
            result = await self._graph.mark_read(
                job.phone_number_id,
                self._token_for(job.phone_number_id),
                job.message_id,
                typing_indicator=job.typing_indicator,
            )
            if not result.ok and result.error is not None:
                logger.info(
                    "WhatsApp: could not mark %s's message as read: %s",
                    mask_phone(job.recipient),
                    result.error.title,
                )
            return
        phone_number_id = job.phone_number_id or self._default_phone_number_id
        payload = job.payload
        if self._media is not None:  # media (issue #10): a local file is uploaded here
            prepared = await self._media.prepare(
                phone_number_id, self._token_for(phone_number_id), payload
            )
            if prepared.payload is None:
                logger.warning(
                    "WhatsApp: %s to %s not sent: %s: %s",
                    job.kind,
                    mask_phone(job.recipient),
                    prepared.error_title,
                    prepared.error_details,
                )
                await self._store.finish_outbound(
                    job.id,
                    state=OutboxState.FAILED,
                    wamid=None,
                    attempts=0,
                    error_code=prepared.error_code,
                    error_title=prepared.error_title,
                    error_details=prepared.error_details,
                )
                return
            payload = prepared.payload
        billed = self._rules is not None and job.kind == OutboundKind.TEMPLATE.value
        if billed:
            refused = await self._rules.reserve(job.id, job.conversation_id, job.payload)
            if refused is not None:
                logger.warning(
                    "WhatsApp: template to %s not sent: %s", mask_phone(job.recipient), refused
                )
                await self._store.finish_outbound(
                    job.id,
                    state=OutboxState.HELD,
                    wamid=None,
                    attempts=0,
                    error_title="insufficient balance",
                    error_details=refused,
                )
                self._report_template_failure(
                    job.conversation_id, phone_number_id, "insufficient_balance"
                )
                return
        result = await self._graph.send_message(
            phone_number_id, self._token_for(phone_number_id), payload
        )
        if result.ok:
            await self._store.finish_outbound(
                job.id, state=OutboxState.SENT, wamid=result.wamid, attempts=result.attempts
            )
            if billed and result.wamid:
                await self._rules.attach(job.id, result.wamid)
            return
        if billed:
            await self._rules.release(job.id, "send failed")
        # The Graph client already logged the failure with its code and meaning.
        error = result.error
        info = error.info if error is not None else None
        await self._store.finish_outbound(
            job.id,
            state=OutboxState.FAILED,
            wamid=None,
            attempts=result.attempts,
            error_code=error.code if error else None,
            # a network error has no code: its own title ("Timeout") says more
            error_title=(
                (error.title if error.code is None else info.title) if error and info else None
            ),
            error_details=error.details if error else None,
        )


def channel_sender(
    config: ChannelConfig,
    store: WhatsAppStore,
    graph: GraphClient,
    store_url: str,
    *,
    on_template_failure: Callable[[str, str | None, str], None],
    schedules_follow_ups: bool,
) -> OutboundSender:
    """The sender of a channel configured by ``config``: WhatsApp's sending rules with the
    template catalogue and rate card, per-number tokens, local media uploads. The Rasa
    process schedules follow-ups; the ingress process (which only delivers) does not."""
    resources = TemplateResources(
        store_url=store_url,
        catalogue_path=Path(config.template_catalogue),
        rate_card_path=Path(config.rate_card),
    )
    return OutboundSender(
        store,
        graph,
        access_token_for=config.numbers.access_token,
        default_phone_number_id=config.phone_number_id,
        rules=SendRules(store, resources, closed_window_template=config.closed_window_template),
        on_template_failure=on_template_failure,
        follow_up_after_seconds=config.follow_up_after_seconds if schedules_follow_ups else 0,
        media=LocalMediaUploader(store, graph, config.media_upload_dir),
    )
