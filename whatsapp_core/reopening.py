"""Free-form or template: the one decision every reply needs, and what it rests on.

WhatsApp lets the business write freely only inside the 24-hour customer service
window; outside it only an approved template can reopen the conversation, and a
template costs money (the ledger must cover its price). :func:`decide_reply` makes
that choice from the window, the prepared template and the balance;
:class:`TemplateResources` loads what it needs (template catalogue with the statuses
Meta announced since the last sync, rate card, ledger database) from the environment,
the same way in the Rasa server and in the action server.

Environment: ``WHATSAPP_STORE_URL`` (the channel's database, default
``sqlite:///whatsapp.db``: :mod:`whatsapp_core.store_location`),
``WHATSAPP_TEMPLATE_CATALOGUE`` (default ``templates/catalogue.yml``),
``WHATSAPP_RATE_CARD`` (default ``templates/rate_card.yml``),
``WHATSAPP_DEFAULT_LANGUAGE`` (default ``en``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from sqlalchemy.engine import Engine

from whatsapp_core import ledger
from whatsapp_core.schema import create_schema
from whatsapp_core.store import create_engine
from whatsapp_core.store_location import store_url_from_env
from whatsapp_core.template_status import apply_recorded_statuses
from whatsapp_core.templates import (
    ContactContext,
    PreparedTemplate,
    TemplateCatalogue,
    TemplateRefusal,
    prepare_template,
)
from whatsapp_core.window import WindowState


class ReplyKind(str, Enum):
    """What may be sent now."""

    FREE_FORM = "free_form"
    TEMPLATE = "template"
    REFUSED = "refused"


class RefusedBecause(str, Enum):
    """Why nothing can be sent (besides a template's own refusal reasons)."""

    NO_TEMPLATE = "window_closed_no_template"
    INSUFFICIENT_BALANCE = "insufficient_balance"


@dataclass(frozen=True, slots=True)
class ReplyDecision:
    """The choice, the template to send (for TEMPLATE), its expected price, and why not."""

    kind: ReplyKind
    template: PreparedTemplate | None = None
    price: int = 0
    reason: str | None = None
    detail: str | None = None


def decide_reply(
    window: WindowState,
    template: PreparedTemplate | TemplateRefusal | None,
    *,
    price: int = 0,
    available: int = 0,
) -> ReplyDecision:
    """Free-form inside the window; else the template when it is approved, complete and
    covered by the ``available`` balance (micro-units); else refused with the reason."""
    if window.open:
        return ReplyDecision(ReplyKind.FREE_FORM)
    if template is None:
        return ReplyDecision(
            ReplyKind.REFUSED,
            reason=RefusedBecause.NO_TEMPLATE.value,
            detail="the window is closed and no template was given",
        )
    if isinstance(template, TemplateRefusal):
        return ReplyDecision(
            ReplyKind.REFUSED, reason=template.reason.value, detail=template.detail
        )
    if price > available:
        return ReplyDecision(
            ReplyKind.REFUSED,
            template=template,
            price=price,
            reason=RefusedBecause.INSUFFICIENT_BALANCE.value,
            detail=(
                f"{template.name} costs {ledger.format_amount(price)}, "
                f"the balance is {ledger.format_amount(available)}"
            ),
        )
    return ReplyDecision(ReplyKind.TEMPLATE, template=template, price=price)


@dataclass
class TemplateResources:
    """Catalogue, rate card and ledger database, from the environment (see module doc)."""

    store_url: str
    catalogue_path: Path
    rate_card_path: Path
    default_language: str = "en"
    _engine: Engine | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TemplateResources:
        env = os.environ if environ is None else environ
        return cls(
            store_url=store_url_from_env(env),
            catalogue_path=Path(env.get("WHATSAPP_TEMPLATE_CATALOGUE", "templates/catalogue.yml")),
            rate_card_path=Path(env.get("WHATSAPP_RATE_CARD", "templates/rate_card.yml")),
            default_language=env.get("WHATSAPP_DEFAULT_LANGUAGE", "en"),
        )

    @property
    def engine(self) -> Engine:
        """The ledger database (created on first use; the channel's tables included)."""
        if self._engine is None:
            self._engine = create_engine(self.store_url)
            create_schema(self._engine)
        return self._engine

    def catalogue(self) -> TemplateCatalogue:
        """The catalogue file with the statuses Meta announced since (read each call)."""
        catalogue = TemplateCatalogue.load(self.catalogue_path)
        with self.engine.begin() as connection:
            apply_recorded_statuses(connection, catalogue)
        return catalogue

    def rate_card(self) -> ledger.RateCard:
        return ledger.RateCard.load(self.rate_card_path)

    def available_balance(self) -> int:
        with self.engine.begin() as connection:
            return ledger.balance(connection).available

    def decide(
        self,
        window: WindowState,
        template_name: str | None,
        contact: ContactContext,
        wa_id: str,
    ) -> ReplyDecision:
        """:func:`decide_reply` with the template prepared for ``contact`` and priced."""
        if window.open or template_name is None:
            return decide_reply(window, None)
        prepared = prepare_template(
            self.catalogue(), template_name, contact, default_language=self.default_language
        )
        if isinstance(prepared, TemplateRefusal):
            return decide_reply(window, prepared)
        price = self.rate_card().expected_price(prepared.category, wa_id, window)
        return decide_reply(window, prepared, price=price, available=self.available_balance())
