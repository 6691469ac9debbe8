"""Deliver replies: durable outbox → Graph API → recorded outcome, in order per contact.

A reply is first written to the outbox (so a crash does not lose it), then sent by a
per-recipient worker, off the bot turn: the turn never waits on Meta's latency, and
a slow or throttled contact never holds up another. Every outcome is recorded with
its wamid (so status webhooks find it later) or with Meta's error code; a failed
send is logged with the catalogue's meaning and never raised into Rasa.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from whatsapp_core.graph_client import GraphClient
from whatsapp_core.masking import mask_phone
from whatsapp_core.ordered import OrderedWorkers
from whatsapp_core.outbound import OutboundMessage
from whatsapp_core.store import OutboxItem, OutboxState, WhatsAppStore

logger = logging.getLogger(__name__)


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
    ) -> None:
        self._store = store
        self._graph = graph
        self._token_for = access_token_for
        self._default_phone_number_id = default_phone_number_id
        self._workers: OrderedWorkers[OutboxItem | ReadReceipt] = OrderedWorkers(
            "whatsapp-outbound", self._deliver, key=lambda job: job.recipient
        )

    async def send(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        messages: Sequence[OutboundMessage],
    ) -> list[OutboxItem]:
        """Durably queue ``messages`` for ``recipient`` and start sending them in order.

        Returns once they are in the outbox, not when Meta answered. A numbered
        menu among them is remembered for the conversation, so the contact's
        reply "2" maps back to the second option's payload.
        """
        phone_number_id = phone_number_id or self._default_phone_number_id
        queued = await self._store.enqueue_outbound(
            conversation_id,
            phone_number_id,
            recipient,
            [(message.kind.value, message.to_payload(recipient)) for message in messages],
        )
        for message in messages:
            if message.menu is not None:
                await self._store.save_menu(
                    conversation_id,
                    [
                        {"number": o.number, "title": o.title, "payload": o.payload}
                        for o in message.menu.options
                    ],
                )
        self._workers.submit(queued)
        return queued

    async def record_invalid(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        recipient: str,
        response: dict,
        reason: str,
    ) -> None:
        """Record a response that could not be turned into a valid message, unsent."""
        (row,) = await self._store.enqueue_outbound(
            conversation_id,
            phone_number_id or self._default_phone_number_id,
            recipient,
            [("invalid", {"response": response})],
        )
        await self._store.finish_outbound(
            row.id,
            state=OutboxState.FAILED,
            wamid=None,
            attempts=0,
            error_title="invalid response",
            error_details=reason,
        )

    def resume(self, items: Sequence[OutboxItem]) -> None:
        """Send outbox rows recovered after a crash (already durable)."""
        self._workers.submit(items)

    def mark_read(self, receipt: ReadReceipt) -> None:
        """Queue a read receipt ahead of the replies the coming turn will produce."""
        self._workers.submit([receipt])

    async def wait_idle(self) -> None:
        """Return once everything queued so far has been sent or recorded as failed."""
        await self._workers.wait_idle()

    async def stop(self) -> None:
        """Stop sending; queued rows stay in the outbox for recovery."""
        await self._workers.stop()

    async def _deliver(self, job: OutboxItem | ReadReceipt) -> None:
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
        result = await self._graph.send_message(
            phone_number_id, self._token_for(phone_number_id), job.payload
        )
        if result.ok:
            await self._store.finish_outbound(
                job.id, state=OutboxState.SENT, wamid=result.wamid, attempts=result.attempts
            )
            return
        # The Graph client already logged the failure with its code and meaning.
        error = result.error
        info = error.info if error is not None else None
        await self._store.finish_outbound(
            job.id,
            state=OutboxState.FAILED,
            wamid=None,
            attempts=result.attempts,
            error_code=error.code if error else None,
            error_title=(info.title if info else None) or (error.title if error else None),
            error_details=error.details if error else None,
        )
