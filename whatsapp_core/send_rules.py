"""WhatsApp's sending rules, applied to every outbound message whoever wrote it.

The output channel never sees Rasa's tracker, so the window is computed here from the
store: the newest WhatsApp timestamp of a message from this contact to this business
number (a message Meta re-delivers days late does not reopen anything: its own
timestamp counts, not its arrival).

- :meth:`SendRules.screen`: free-form messages to a contact whose 24-hour window is
  closed are never sent. They are replaced by the configured re-engagement template
  (``closed_window_template``, filled for the contact), or held with the reason.
  Templates always pass.
- :meth:`SendRules.reserve` / :meth:`release` / :meth:`attach`: a template reserves its
  expected price in the ledger before it is sent; no balance, no send. Meta's
  ``pricing`` in the status webhooks settles the reservation later
  (:meth:`settle`): billed, or released when the message was free.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from whatsapp_core import ledger
from whatsapp_core.masking import mask_phone
from whatsapp_core.outbound import OutboundKind, OutboundMessage
from whatsapp_core.prepared import Prepared
from whatsapp_core.reopening import TemplateResources
from whatsapp_core.schema import inbox
from whatsapp_core.store import WhatsAppStore
from whatsapp_core.templates import (
    ContactContext,
    TemplateCatalogue,
    TemplateRefusal,
    prepare_template,
)
from whatsapp_core.window import ConversationFacts, WindowPolicy, WindowState, window_state

logger = logging.getLogger(__name__)

WINDOW_CLOSED = "window_closed"
DEFAULT_CATEGORY = "MARKETING"
"""Category assumed for a template the catalogue does not know (the dearest)."""


@dataclass(frozen=True, slots=True)
class Screened:
    """What may be queued, what is held (with why), and a template failure to report.

    ``needs_catalogue``: the window is closed and the re-engagement template must be
    prepared; screen again with the template catalogue (nothing else is decided)."""

    send: tuple[OutboundMessage, ...]
    held: tuple[tuple[OutboundMessage, str], ...] = ()
    template_failure: str | None = None
    needs_catalogue: bool = False


# Built once (every reply is screened): the contact's last window-opening message, from
# any business number or from one.
_LAST_INBOUND_ANY_NUMBER = (
    sa.select(inbox.c.wa_timestamp, inbox.c.metadata_json)
    .where(inbox.c.conversation_id == sa.bindparam("conversation_id"), inbox.c.opens_window)
    .order_by(inbox.c.wa_timestamp.desc())
    .limit(1)
)
_LAST_INBOUND = Prepared(_LAST_INBOUND_ANY_NUMBER)
_LAST_INBOUND_TO_NUMBER = Prepared(
    _LAST_INBOUND_ANY_NUMBER.where(inbox.c.phone_number_id == sa.bindparam("phone_number_id"))
)


def _last_inbound(
    connection: Connection, conversation_id: str, phone_number_id: str | None
) -> tuple[int | None, str]:
    """WhatsApp timestamp and metadata (JSON, parsed only when a template needs it) of the
    contact's last window-opening message; ``(None, "{}")`` when there is none."""
    if phone_number_id is None:
        row = _LAST_INBOUND.first(connection, {"conversation_id": conversation_id})
    else:
        row = _LAST_INBOUND_TO_NUMBER.first(
            connection, {"conversation_id": conversation_id, "phone_number_id": phone_number_id}
        )
    if row is None:
        return None, "{}"
    return row.wa_timestamp, row.metadata_json


class SendRules:
    """The window guard and the template ledger (see the module docstring)."""

    def __init__(
        self,
        store: WhatsAppStore,
        resources: TemplateResources,
        *,
        policy: WindowPolicy | None = None,
        closed_window_template: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._resources = resources
        self._policy = policy or WindowPolicy.from_env()
        self._template = closed_window_template
        self._clock = clock

    def _window_in(
        self, connection: Connection, conversation_id: str, phone_number_id: str | None
    ) -> tuple[WindowState, str]:
        """The service window now, and the metadata (JSON) of the contact's last message."""
        last, metadata_json = _last_inbound(connection, conversation_id, phone_number_id)
        facts = ConversationFacts(last_inbound_at=last)
        return window_state(facts, self._clock(), self._policy), metadata_json

    async def screen(
        self,
        conversation_id: str,
        phone_number_id: str | None,
        messages: Sequence[OutboundMessage],
    ) -> Screened:
        """Split ``messages`` into what may be sent now and what must be held."""
        screened = await self._store.run(
            lambda c: self.screen_in(c, conversation_id, phone_number_id, messages)
        )
        if not screened.needs_catalogue:
            return screened
        catalogue = await self.catalogue()
        return await self._store.run(
            lambda c: self.screen_in(c, conversation_id, phone_number_id, messages, catalogue)
        )

    async def catalogue(self) -> TemplateCatalogue:
        """The template catalogue, read on the store's thread (a file and a query)."""
        return await self._store.run(lambda _c: self._resources.catalogue())

    def screen_in(
        self,
        connection: Connection,
        conversation_id: str,
        phone_number_id: str | None,
        messages: Sequence[OutboundMessage],
        catalogue: TemplateCatalogue | None = None,
    ) -> Screened:
        """:meth:`screen` inside the caller's transaction (the sender queues what passes in
        the same one). Reads no file: without ``catalogue``, a closed window that needs
        the re-engagement template gives ``needs_catalogue``."""
        free_form = [m for m in messages if m.kind is not OutboundKind.TEMPLATE]
        if not free_form:
            return Screened(tuple(messages))
        window, metadata_json = self._window_in(connection, conversation_id, phone_number_id)
        if window.open:
            return Screened(tuple(messages))
        templates = tuple(m for m in messages if m.kind is OutboundKind.TEMPLATE)
        held = tuple((m, WINDOW_CLOSED) for m in free_form)
        if self._template is None or templates:
            return Screened(templates, held)
        if catalogue is None:
            return Screened((), needs_catalogue=True)
        metadata = json.loads(metadata_json)
        whatsapp = metadata.get("whatsapp", {})
        contact = ContactContext(profile_name=whatsapp.get("profile_name"), metadata=metadata)
        prepared = prepare_template(
            catalogue, self._template, contact, default_language=self._resources.default_language
        )
        if isinstance(prepared, TemplateRefusal):
            logger.warning(
                "WhatsApp: window closed for %s and template %s refused: %s",
                mask_phone(conversation_id),
                self._template,
                prepared.detail,
            )
            return Screened((), held, template_failure=prepared.reason.value)
        replacement = OutboundMessage(OutboundKind.TEMPLATE, prepared.payload)
        return Screened((replacement,), held)

    async def reserve(self, outbox_id: int, conversation_id: str, payload: dict) -> str | None:
        """Reserve the price of the template ``payload``; None when reserved, else why not."""
        name = str((payload.get("template") or {}).get("name") or "")
        wa_id = str(payload.get("to") or conversation_id)

        def hold(connection: Connection) -> str | None:
            template = self._resources.catalogue().get(name)
            category = template.category if template is not None else DEFAULT_CATEGORY
            card = self._resources.rate_card()
            last_inbound_at, _ = _last_inbound(connection, conversation_id, None)
            facts = ConversationFacts(last_inbound_at=last_inbound_at)
            window = window_state(facts, self._clock(), self._policy)
            result = ledger.reserve(
                connection,
                key=str(outbox_id),
                conversation_id=conversation_id,
                template=name,
                category=category,
                country=card.country_of(wa_id),
                price=card.expected_price(category, wa_id, window),
                currency=card.currency,
            )
            if isinstance(result, ledger.InsufficientBalance):
                return (
                    f"insufficient balance: {name} costs {ledger.format_amount(result.price)} "
                    f"{result.currency}, available {ledger.format_amount(result.available)}"
                )
            return None

        return await self._store.run(hold)

    async def attach(self, outbox_id: int, wamid: str) -> None:
        """Tie a reservation to the wamid Meta gave the template."""
        await self._store.run(lambda c: ledger.attach_wamid(c, str(outbox_id), wamid))

    async def release(self, outbox_id: int, reason: str) -> None:
        """Give back a reservation whose template was not sent."""
        await self._store.run(lambda c: ledger.release(c, str(outbox_id), reason))
