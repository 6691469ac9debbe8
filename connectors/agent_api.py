"""The agent API and inbox page, served under ``/webhooks/whatsapp/agent/``.

Disabled (no routes at all) unless the channel's credentials set ``agent_token``. The
page (``GET /agent/``, ``app.js``, ``app.css``) holds no data and is public; every API
route (``/agent/api/...``) needs ``Authorization: Bearer <agent_token>`` (compared in
constant time; never read from a cookie or the URL, never logged), else 401.

A thin adapter, like the channel: the queue and its SQL are in
:mod:`whatsapp_core.handover`, the window rules in :mod:`whatsapp_core.window`,
templates in :mod:`whatsapp_core.templates`, money in :mod:`whatsapp_core.ledger`.
Replies go through the channel's own sender, the same path as the bot's replies, and
are recorded in the Rasa tracker (``BotUttered`` with ``metadata.agent: true``) so the
bot has the context when it takes over again. The JSON shapes are in docs/agents.md.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationResumed,
    Event,
    SlotSet,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from whatsapp_core import handover, ledger
from whatsapp_core.handover import SLOT_HANDOVER, SLOT_HANDOVER_REASON, Handover, window_to_dict
from whatsapp_core.masking import mask_phone
from whatsapp_core.outbound import (
    InvalidOutboundMessage,
    OutboundKind,
    OutboundMessage,
    build_messages,
)
from whatsapp_core.store import OutboxState
from whatsapp_core.templates import (
    APPROVED,
    CatalogueError,
    ContactContext,
    ParameterMapping,
    PreparedTemplate,
    RefusalReason,
    SourceKind,
    Template,
    TemplateCatalogue,
    TemplatePreview,
    TemplateRefusal,
    Translation,
    prepare_template,
    preview,
)
from whatsapp_core.timeline import load_timeline
from whatsapp_core.window import WindowPolicy, WindowState

logger = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).resolve().parent / "agent_page"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HANDBACK_INTENT = "whatsapp_handback"
CATALOGUE_ENV = "WHATSAPP_TEMPLATE_CATALOGUE"
DEFAULT_CATALOGUE = "templates/catalogue.yml"
RATE_CARD_ENV = "WHATSAPP_RATE_CARD"
DEFAULT_RATE_CARD = "templates/rate_card.yml"
MAX_REPLY_CHARS = 4096
MAX_AGENT_NAME_CHARS = 100

RuntimeGetter = Callable[[Any], Awaitable[Any]]
"""``await runtime_for(app)``: the channel's running store and sender (started if needed)."""


class ApiError(Exception):
    """A refused request: the HTTP status, a machine-readable ``error`` and a ``detail``."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.extra = extra

    def response(self) -> HTTPResponse:
        return _json({"error": self.error, "detail": self.detail, **self.extra}, self.status)


def _json(body: Mapping[str, Any], status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, headers=dict(SECURITY_HEADERS))


def _static(name: str, content_type: str) -> Callable[[Request], Awaitable[HTTPResponse]]:
    """A handler serving one file of the page. The page is at a URL ending in ``/`` (its
    relative links depend on it): a request without the slash is redirected."""
    body = (PAGE_DIR / name).read_bytes()
    directory = name == "index.html"

    async def serve(request: Request) -> HTTPResponse:
        if directory and not request.path.endswith("/"):
            return response.redirect(request.path + "/", headers=dict(SECURITY_HEADERS))
        return response.raw(body, content_type=content_type, headers=dict(SECURITY_HEADERS))

    return serve


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """True when ``authorization`` is ``Bearer <token>`` (constant-time comparison)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _body(request: Request) -> dict[str, Any]:
    try:
        data = request.json
    except Exception:  # noqa: BLE001 - Sanic raises its own error types for bad JSON
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "expected a JSON object")
    return data


def _text_field(data: Mapping[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_body", f"'{key}' must be a non-empty string")
    if len(value) > limit:
        raise ApiError(400, "invalid_body", f"'{key}' is longer than {limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class _Conversation:
    """What the routes of one conversation read from the store, in one transaction."""

    handover: Handover
    last_inbound_at: int | None
    contact: handover.ContactMessage | None

    @property
    def phone_number_id(self) -> str | None:
        return self.handover.phone_number_id or (
            self.contact.phone_number_id if self.contact else None
        )

    @property
    def recipient(self) -> str:
        return self.contact.recipient if self.contact else self.handover.conversation_id

    @property
    def wa_id(self) -> str:
        return self.contact.wa_id if self.contact else self.handover.conversation_id


@dataclass(frozen=True, slots=True)
class _TemplateOption:
    """One translation of a template as the picker shows it (see :func:`_option`)."""

    template: Template
    translation: Translation
    preview: TemplatePreview | None
    refusal: TemplateRefusal | None
    missing: tuple[str, ...]
    edited: frozenset[str]

    @property
    def sendable(self) -> bool:
        return self.preview is not None and not self.missing and self.refusal is None

    def to_dict(self) -> dict[str, Any]:
        values = {v.key: v for v in self.preview.values} if self.preview else {}
        parameters = [
            {
                "key": key,
                "value": "" if key in self.missing or key not in values else values[key].value,
                "source": mapping.source,
                "used_fallback": bool(values.get(key) and values[key].used_fallback),
                "edited": key in self.edited,
                "missing": key in self.missing,
            }
            for key, mapping in self.template.parameters.items()
        ]
        refusal = None
        if self.refusal is not None:
            refusal = {"reason": self.refusal.reason.value, "detail": self.refusal.detail}
        elif self.missing:
            refusal = {
                "reason": RefusalReason.MISSING_PARAMETER.value,
                "detail": "fill in " + ", ".join(self.missing),
            }
        return {
            "name": self.template.name,
            "language": self.translation.language,
            "category": self.template.category,
            "status": self.translation.status,
            "text": self.preview.text if self.preview else self.translation.body,
            "parameters": parameters,
            "sendable": self.sendable,
            "refusal": refusal,
        }


@dataclass(frozen=True, slots=True)
class _TemplateChoice:
    """The template an agent picked for a conversation, previewed and priced."""

    runtime: Any
    conversation: _Conversation
    option: _TemplateOption
    overrides: Mapping[str, str]
    contact: ContactContext
    described: dict[str, Any]
    price: int | None
    balance: ledger.Balance
    rate_card: ledger.RateCard


def _with_literals(template: Template, values: Mapping[str, str]) -> Template:
    """``template`` with the parameters in ``values`` given as literal text."""
    literals = {key: ParameterMapping(SourceKind.LITERAL, value) for key, value in values.items()}
    return replace(template, parameters={**template.parameters, **literals})


def _option(
    template: Template,
    translation: Translation,
    contact: ContactContext,
    overrides: Mapping[str, str],
) -> _TemplateOption:
    """Preview one translation for ``contact`` with the agent's ``overrides``.

    A parameter with no value and no fallback does not hide the template: it is listed
    as ``missing`` (shown as ``{{key}}`` in the text) for the agent to fill in.
    """
    edited = frozenset(overrides)
    if translation.status != APPROVED:
        refusal = TemplateRefusal(
            template.name,
            RefusalReason.NOT_APPROVED,
            f"{template.name} ({translation.language}) is {translation.status}, not APPROVED",
            language=translation.language,
            status=translation.status,
        )
        return _TemplateOption(template, translation, None, refusal, (), edited)
    contact = replace(contact, language=translation.language)
    filled = dict(overrides)
    missing: list[str] = []
    # Ends: each round returns or fills one more of the template's parameters.
    while True:
        catalogue = TemplateCatalogue([_with_literals(template, filled)])
        result = preview(catalogue, template.name, contact, default_language=translation.language)
        if isinstance(result, TemplatePreview):
            return _TemplateOption(template, translation, result, None, tuple(missing), edited)
        key = result.parameter
        fillable = key is not None and key in template.parameters and key not in filled
        if result.reason is not RefusalReason.MISSING_PARAMETER or not fillable:
            return _TemplateOption(template, translation, None, result, tuple(missing), edited)
        missing.append(key)
        filled[key] = f"{{{{{key}}}}}"


def _overrides(data: Mapping[str, Any], template: Template) -> dict[str, str]:
    raw = data.get("parameters") or {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ApiError(400, "invalid_body", "'parameters' must map parameter keys to strings")
    unknown = sorted(set(raw) - set(template.parameters))
    if unknown:
        raise ApiError(
            400,
            "unknown_parameter",
            f"{template.name} has no parameter {', '.join(unknown)}",
            parameters=list(template.parameters),
        )
    return {str(key): value for key, value in raw.items()}


def _money(micro: int, currency: str) -> dict[str, Any]:
    return {"amount": ledger.format_amount(micro), "micro": micro, "currency": currency}


def register_agent_routes(blueprint: Blueprint, channel: Any, runtime_for: RuntimeGetter) -> None:
    """Add the agent routes to the channel's blueprint when an agent token is configured.

    ``channel``: the ``WhatsAppInput`` (its ``config`` and ``get_output_channel()``);
    ``runtime_for``: gives the running store and sender for the Sanic app.
    """
    token = channel.config.agent_token
    if not token:
        return
    policy = WindowPolicy.from_env()

    def protected(handler: Callable[..., Awaitable[HTTPResponse]]):
        @functools.wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            if not bearer_token_matches(request.headers.get("authorization"), token):
                return _json(
                    {
                        "error": "unauthorized",
                        "detail": "send the agent token as 'Authorization: Bearer <token>'",
                    },
                    401,
                )
            try:
                return await handler(request, *args, **kwargs)
            except ApiError as error:
                return error.response()

        return guarded

    def rasa_agent(request: Request) -> Any:
        agent = getattr(request.app.ctx, "agent", None)
        if agent is None or not agent.is_ready():
            raise ApiError(503, "bot_not_ready", "the Rasa model is not loaded yet")
        return agent

    async def update_tracker(
        agent: Any, conversation_id: str, events: list[Event], trigger: str | None = None
    ) -> None:
        """Append ``events`` to the conversation's tracker (under its lock), then trigger
        the external intent ``trigger`` if the domain has it, else save."""
        output = channel.get_output_channel()
        async with agent.lock_store.lock(conversation_id):
            tracker = await agent.processor.fetch_tracker_and_update_session(
                conversation_id, output
            )
            for event in events:
                tracker.update(event, agent.domain)
            if trigger is not None and trigger in agent.domain.intents:
                await agent.trigger_intent(trigger, [], output, tracker)
            else:
                await agent.tracker_store.save(tracker)

    async def conversation(request: Request, conversation_id: str, *, open_only: bool):
        runtime = await runtime_for(request.app)

        def load(connection: Any) -> _Conversation | None:
            found = handover.latest_handover(connection, conversation_id)
            if found is None:
                return None
            return _Conversation(
                found,
                handover.last_inbound_at(connection, conversation_id, found.phone_number_id),
                handover.last_contact_message(connection, conversation_id),
            )

        loaded = await runtime.store.run(load)
        if loaded is None:
            raise ApiError(404, "not_found", "this conversation was never handed over")
        if open_only and not loaded.handover.is_open:
            raise ApiError(
                409,
                "not_handed_over",
                "this conversation is not in the agents' queue (it was handed back)",
            )
        return runtime, loaded

    def window_of(loaded: _Conversation, now: float) -> WindowState:
        return handover.current_window(
            loaded.handover.summary.facts, loaded.last_inbound_at, now, policy
        )

    async def template_setup() -> tuple[TemplateCatalogue, ledger.RateCard]:
        catalogue_path = os.environ.get(CATALOGUE_ENV) or DEFAULT_CATALOGUE
        rate_card_path = os.environ.get(RATE_CARD_ENV) or DEFAULT_RATE_CARD
        loop = asyncio.get_running_loop()
        try:
            catalogue = await loop.run_in_executor(None, TemplateCatalogue.load, catalogue_path)
            rate_card = await loop.run_in_executor(None, ledger.RateCard.load, rate_card_path)
        except (OSError, CatalogueError, ValueError) as error:
            raise ApiError(503, "templates_unavailable", str(error)) from None
        return catalogue, rate_card

    async def contact_context(request: Request, loaded: _Conversation) -> ContactContext:
        slots: dict[str, Any] = {}
        agent = getattr(request.app.ctx, "agent", None)
        if agent is not None and agent.is_ready():
            tracker = await agent.tracker_store.retrieve(loaded.handover.conversation_id)
            if tracker is not None:
                slots = tracker.current_slot_values()
        whatsapp = dict(loaded.contact.whatsapp) if loaded.contact else {}
        return ContactContext(
            profile_name=loaded.contact.profile_name if loaded.contact else None,
            slots=slots,
            metadata={"whatsapp": whatsapp},
        )

    def priced(
        option: _TemplateOption, rate_card: ledger.RateCard, wa_id: str, window: WindowState
    ) -> tuple[dict[str, Any], int | None]:
        data = option.to_dict()
        try:
            price = rate_card.expected_price(option.template.category, wa_id, window)
        except ValueError as error:
            data["price"] = None
            data["sendable"] = False
            data["refusal"] = data["refusal"] or {"reason": "no_price", "detail": str(error)}
            return data, None
        data["price"] = _money(price, rate_card.currency)
        return data, price

    async def chosen_option(
        request: Request, conversation_id: str, *, open_only: bool
    ) -> _TemplateChoice:
        data = _body(request)
        runtime, loaded = await conversation(request, conversation_id, open_only=open_only)
        catalogue, rate_card = await template_setup()
        name = _text_field(data, "name", 512)
        language = _text_field(data, "language", 32)
        template = catalogue.get(name)
        translation = template.translation(language) if template else None
        if template is None or translation is None:
            raise ApiError(404, "no_such_template", f"no template {name!r} in {language!r}")
        overrides = _overrides(data, template)
        contact = await contact_context(request, loaded)
        option = _option(template, translation, contact, overrides)
        now = time.time()
        window = window_of(loaded, now)
        balance = await runtime.store.run(ledger.balance)
        described, price = priced(option, rate_card, loaded.wa_id, window)
        return _TemplateChoice(
            runtime, loaded, option, overrides, contact, described, price, balance, rate_card
        )

    # ------------------------------------------------------------------- page
    blueprint.add_route(
        _static("index.html", "text/html; charset=utf-8"), "/agent/", name="agent_page"
    )
    blueprint.add_route(
        _static("app.js", "text/javascript; charset=utf-8"), "/agent/app.js", name="agent_script"
    )
    blueprint.add_route(
        _static("app.css", "text/css; charset=utf-8"), "/agent/app.css", name="agent_style"
    )

    # -------------------------------------------------------------------- API
    @blueprint.route("/agent/api/conversations", methods=["GET"])
    @protected
    async def agent_queue(request: Request) -> HTTPResponse:
        runtime = await runtime_for(request.app)
        now = time.time()
        entries = await runtime.store.run(handover.open_queue)
        return _json(
            {
                "now": now,
                "conversations": [
                    {
                        **entry.handover.to_dict(),
                        "window": window_to_dict(entry.window(now, policy)),
                        "last_message": (
                            entry.last_message.to_dict() if entry.last_message else None
                        ),
                    }
                    for entry in entries
                ],
            }
        )

    @blueprint.route("/agent/api/conversations/<conversation_id:str>", methods=["GET"])
    @protected
    async def agent_conversation(request: Request, conversation_id: str) -> HTTPResponse:
        runtime, loaded = await conversation(request, conversation_id, open_only=False)
        timeline = await runtime.store.run(lambda c: load_timeline(c, conversation_id))
        now = time.time()
        return _json(
            {
                "now": now,
                "handover": loaded.handover.to_dict(),
                "summary": loaded.handover.summary.to_dict(),
                "window": window_to_dict(window_of(loaded, now)),
                "timeline": [entry.to_dict() for entry in timeline],
            }
        )

    @blueprint.route("/agent/api/conversations/<conversation_id:str>/take", methods=["POST"])
    @protected
    async def agent_take(request: Request, conversation_id: str) -> HTTPResponse:
        agent_name = _text_field(_body(request), "agent", MAX_AGENT_NAME_CHARS).strip()
        agent = rasa_agent(request)
        runtime, _ = await conversation(request, conversation_id, open_only=True)
        taken = await runtime.store.run(lambda c: handover.take(c, conversation_id, agent_name))
        if taken is None:
            raise ApiError(409, "not_handed_over", "this conversation was handed back meanwhile")
        await update_tracker(agent, conversation_id, [SlotSet(SLOT_HANDOVER, taken.state.value)])
        logger.info("Agent took conversation %s", mask_phone(conversation_id))
        return _json({"handover": taken.to_dict()})

    @blueprint.route("/agent/api/conversations/<conversation_id:str>/messages", methods=["POST"])
    @protected
    async def agent_message(request: Request, conversation_id: str) -> HTTPResponse:
        text = _text_field(_body(request), "text", MAX_REPLY_CHARS)
        agent = rasa_agent(request)
        runtime, loaded = await conversation(request, conversation_id, open_only=True)
        window = window_of(loaded, time.time())
        if not window.open:
            raise ApiError(
                409,
                "window_closed",
                "The 24-hour customer service window is closed: the contact has not written "
                "in the last 24 hours. Only an approved template can reach them now.",
                window=window_to_dict(window),
            )
        try:
            messages = build_messages({"text": text})
        except InvalidOutboundMessage as error:
            raise ApiError(400, "invalid_message", str(error)) from None
        queued = await runtime.sender.send(
            conversation_id, loaded.phone_number_id, loaded.recipient, messages
        )
        metadata = {"agent": True, "agent_name": loaded.handover.agent}
        await update_tracker(agent, conversation_id, [BotUttered(text, metadata=metadata)])
        return _json(
            {"queued": [item.id for item in queued], "window": window_to_dict(window)}, 202
        )

    @blueprint.route("/agent/api/conversations/<conversation_id:str>/templates", methods=["GET"])
    @protected
    async def agent_templates(request: Request, conversation_id: str) -> HTTPResponse:
        runtime, loaded = await conversation(request, conversation_id, open_only=False)
        catalogue, rate_card = await template_setup()
        contact = await contact_context(request, loaded)
        now = time.time()
        window = window_of(loaded, now)
        balance = await runtime.store.run(ledger.balance)
        options = []
        for template in catalogue.templates:
            for translation in template.languages.values():
                option = _option(template, translation, contact, {})
                described, price = priced(option, rate_card, loaded.wa_id, window)
                described["affordable"] = price is not None and price <= balance.available
                options.append(described)
        return _json(
            {
                "now": now,
                "window": window_to_dict(window),
                "contact_name": contact.profile_name,
                "balance": {
                    "available": _money(balance.available, balance.currency),
                    "reserved": _money(balance.reserved, balance.currency),
                },
                "templates": options,
            }
        )

    @blueprint.route(
        "/agent/api/conversations/<conversation_id:str>/templates/preview", methods=["POST"]
    )
    @protected
    async def agent_template_preview(request: Request, conversation_id: str) -> HTTPResponse:
        chosen = await chosen_option(request, conversation_id, open_only=False)
        balance = chosen.balance
        affordable = chosen.price is not None and chosen.price <= balance.available
        return _json(
            {
                **chosen.described,
                "affordable": affordable,
                "balance": {"available": _money(balance.available, balance.currency)},
            }
        )

    @blueprint.route("/agent/api/conversations/<conversation_id:str>/templates", methods=["POST"])
    @protected
    async def agent_template_send(request: Request, conversation_id: str) -> HTTPResponse:
        agent = rasa_agent(request)
        chosen = await chosen_option(request, conversation_id, open_only=True)
        runtime, loaded, option = chosen.runtime, chosen.conversation, chosen.option
        described, price, balance, rate_card = (
            chosen.described, chosen.price, chosen.balance, chosen.rate_card
        )
        if not described["sendable"] or price is None:
            refusal = described["refusal"] or {}
            raise ApiError(
                409, refusal.get("reason", "not_sendable"), refusal.get("detail", ""),
                template=described,
            )
        if price > balance.available:
            raise ApiError(
                402,
                "insufficient_balance",
                f"sending costs {ledger.format_amount(price)} {rate_card.currency}; "
                f"{ledger.format_amount(balance.available)} {balance.currency} is available",
                price=_money(price, rate_card.currency),
                available=_money(balance.available, balance.currency),
            )
        catalogue = TemplateCatalogue([_with_literals(option.template, chosen.overrides)])
        prepared = prepare_template(
            catalogue,
            option.template.name,
            replace(chosen.contact, language=option.translation.language),
            default_language=option.translation.language,
        )
        if not isinstance(prepared, PreparedTemplate):
            raise ApiError(409, prepared.reason.value, prepared.detail)
        message = OutboundMessage(OutboundKind.TEMPLATE, prepared.payload)
        (item,) = await runtime.store.enqueue_outbound(
            conversation_id,
            loaded.phone_number_id,
            loaded.recipient,
            [(message.kind.value, message.to_payload(loaded.recipient))],
        )

        def reserve(connection: Any) -> ledger.Reservation | ledger.InsufficientBalance:
            return ledger.reserve(
                connection,
                key=str(item.id),
                conversation_id=conversation_id,
                template=prepared.name,
                category=prepared.category,
                country=rate_card.country_of(loaded.wa_id),
                price=price,
                currency=rate_card.currency,
            )

        try:
            reservation = await runtime.store.run(reserve)
        except ledger.CurrencyMismatch as error:
            await runtime.store.finish_outbound(
                item.id, state=OutboxState.FAILED, wamid=None, attempts=0,
                error_title="currency mismatch", error_details=str(error),
            )
            raise ApiError(409, "currency_mismatch", str(error)) from None
        if isinstance(reservation, ledger.InsufficientBalance):
            await runtime.store.finish_outbound(
                item.id, state=OutboxState.FAILED, wamid=None, attempts=0,
                error_title="insufficient balance", error_details="not sent: balance too low",
            )
            raise ApiError(
                402,
                "insufficient_balance",
                "the balance was spent meanwhile",
                price=_money(price, rate_card.currency),
                available=_money(reservation.available, reservation.currency),
            )
        runtime.sender.resume([item])
        metadata = {
            "agent": True,
            "agent_name": loaded.handover.agent,
            "template": {"name": prepared.name, "language": prepared.language},
        }
        await update_tracker(
            agent, conversation_id, [BotUttered(prepared.rendered_text, metadata=metadata)]
        )
        after = await runtime.store.run(ledger.balance)
        logger.info(
            "Agent sent template %s (%s) to %s",
            prepared.name,
            prepared.language,
            mask_phone(conversation_id),
        )
        return _json(
            {
                "queued": item.id,
                "name": prepared.name,
                "language": prepared.language,
                "text": prepared.rendered_text,
                "price": _money(price, rate_card.currency),
                "balance": {"available": _money(after.available, after.currency)},
            },
            202,
        )

    @blueprint.route("/agent/api/conversations/<conversation_id:str>/handback", methods=["POST"])
    @protected
    async def agent_handback(request: Request, conversation_id: str) -> HTTPResponse:
        agent = rasa_agent(request)
        runtime, _ = await conversation(request, conversation_id, open_only=True)
        # While paused, Rasa ran no action_listen after action_handoff; rules expect one
        # before the user turn that the hand-back intent is.
        await update_tracker(
            agent,
            conversation_id,
            [
                ConversationResumed(),
                SlotSet(SLOT_HANDOVER, None),
                SlotSet(SLOT_HANDOVER_REASON, None),
                ActionExecuted("action_listen"),
            ],
            trigger=HANDBACK_INTENT,
        )
        closed = await runtime.store.run(lambda c: handover.hand_back(c, conversation_id))
        logger.info("Conversation %s handed back to the bot", mask_phone(conversation_id))
        return _json({"handover": closed.to_dict() if closed else None})
