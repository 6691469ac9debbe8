"""The agent API and inbox page, served under ``/webhooks/whatsapp/agent/``.

Disabled (no routes at all) unless the channel's credentials set ``agent_token``. The
page (``GET /agent/``, ``app.js``, ``app.css``) holds no data and is public; every API
route (``/agent/api/...``) needs ``Authorization: Bearer <agent_token>`` (compared in
constant time; never read from a cookie or the URL, never logged), else 401.

A thin adapter, like the channel: the queue and its SQL are in
:mod:`whatsapp_core.handover`, the window rules in :mod:`whatsapp_core.window`,
templates in :mod:`whatsapp_core.templates`, money in :mod:`whatsapp_core.ledger`.
Replies and templates go through the channel's own sender, the path of the bot's
replies (window guard, ledger reservation, recording), and are added to the Rasa
tracker (``BotUttered`` with ``metadata.agent: true``) so the bot has the context when
it takes over again. Routes and JSON shapes: docs/agents.md.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import re
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
from whatsapp_core.handover import (
    SLOT_HANDOVER,
    SLOT_HANDOVER_REASON,
    ContactMessage,
    Handover,
    store_window,
    window_to_dict,
)
from whatsapp_core.masking import mask_phone
from whatsapp_core.outbound import (
    InvalidOutboundMessage,
    OutboundKind,
    OutboundMessage,
    build_messages,
)
from whatsapp_core.reopening import TemplateResources
from whatsapp_core.templates import (
    APPROVED,
    CatalogueError,
    ContactContext,
    ParameterMapping,
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
INLINE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
"""Images an agent's browser may show inline (never SVG, which can carry script)."""
HANDBACK_INTENT = "whatsapp_handback"
MAX_REPLY_CHARS = 4096
MAX_AGENT_NAME_CHARS = 100
CONVERSATION = "/agent/api/conversations/<conversation_id:str>"

RuntimeGetter = Callable[[Any], Awaitable[Any]]
"""``await runtime_for(app)``: the channel's running store and sender (started if needed)."""
Handler = Callable[..., Awaitable[HTTPResponse]]


def register_agent_routes(blueprint: Blueprint, channel: Any, runtime_for: RuntimeGetter) -> None:
    """Add the agent routes to the channel's blueprint when an agent token is configured.

    ``channel``: the ``WhatsAppInput`` (its ``config`` and ``get_output_channel()``);
    ``runtime_for``: gives the running store and sender for the Sanic app.
    """
    if channel.config.agent_token:
        AgentApi(channel, runtime_for, WindowPolicy.from_env()).register(blueprint)


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


def media_disposition(mime: str, filename: str | None, media_type: str) -> str:
    """``inline`` for images; ``attachment`` with a safe download name for the rest."""
    if mime in INLINE_MEDIA_TYPES:
        return "inline"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename or "")[:100].strip("._") or media_type
    return f'attachment; filename="{safe}"'


def _json(body: Mapping[str, Any], status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, headers=dict(SECURITY_HEADERS))


def _static(name: str, content_type: str) -> Handler:
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


def _money(micro: int, currency: str) -> dict[str, Any]:
    return {"amount": ledger.format_amount(micro), "micro": micro, "currency": currency}


@dataclass(frozen=True, slots=True)
class _Conversation:
    """A handed-over conversation as the routes read it from the store, in one transaction."""

    handover: Handover
    last_inbound_at: int | None
    contact: ContactMessage | None

    @property
    def id(self) -> str:
        return self.handover.conversation_id

    @property
    def phone_number_id(self) -> str | None:
        return self.handover.phone_number_id or (
            self.contact.phone_number_id if self.contact else None
        )

    @property
    def recipient(self) -> str:
        return self.contact.recipient if self.contact else self.id

    @property
    def wa_id(self) -> str:
        return self.contact.wa_id if self.contact else self.id

    def window(self, now: float, policy: WindowPolicy) -> WindowState:
        return store_window(self.last_inbound_at, now, policy)


# ------------------------------------------------------------------ templates
@dataclass(frozen=True, slots=True)
class TemplateOption:
    """One translation of a template as the picker shows it (see :func:`template_option`).

    ``missing``: parameters with no value and no fallback, for the agent to fill in;
    ``edited``: parameters the agent gave.
    """

    template: Template
    translation: Translation
    preview: TemplatePreview | None
    refusal: TemplateRefusal | None
    missing: tuple[str, ...]
    edited: frozenset[str]

    @property
    def sendable(self) -> bool:
        return self.preview is not None and not self.missing

    def to_dict(self) -> dict[str, Any]:
        values = {v.key: v for v in self.preview.values} if self.preview else {}
        parameters = [
            {
                "key": key,
                "value": "" if key in self.missing or key not in values else values[key].value,
                "source": mapping.source,
                "used_fallback": key in values and values[key].used_fallback,
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


def with_values(template: Template, values: Mapping[str, str]) -> Template:
    """``template`` with the parameters in ``values`` given as literal text."""
    literals = {key: ParameterMapping(SourceKind.LITERAL, value) for key, value in values.items()}
    return replace(template, parameters={**template.parameters, **literals})


def template_option(
    template: Template,
    translation: Translation,
    contact: ContactContext,
    overrides: Mapping[str, str],
) -> TemplateOption:
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
        return TemplateOption(template, translation, None, refusal, (), edited)
    contact = replace(contact, language=translation.language)
    filled = dict(overrides)
    missing: list[str] = []
    # Ends: each round returns or fills one more of the template's parameters.
    while True:
        catalogue = TemplateCatalogue([with_values(template, filled)])
        result = preview(catalogue, template.name, contact, default_language=translation.language)
        if isinstance(result, TemplatePreview):
            return TemplateOption(template, translation, result, None, tuple(missing), edited)
        key = result.parameter
        fillable = key is not None and key in template.parameters and key not in filled
        if result.reason is not RefusalReason.MISSING_PARAMETER or not fillable:
            return TemplateOption(template, translation, None, result, tuple(missing), edited)
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
    return dict(raw)


@dataclass(frozen=True, slots=True)
class _TemplateChoice:
    """The template an agent picked for a conversation, previewed and priced."""

    option: TemplateOption
    overrides: Mapping[str, str]
    contact: ContactContext
    price: int | None
    balance: ledger.Balance
    rate_card: ledger.RateCard

    @property
    def affordable(self) -> bool:
        return self.price is not None and self.price <= self.balance.available

    def to_dict(self) -> dict[str, Any]:
        data = self.option.to_dict()
        if self.price is None:
            data["sendable"] = False
            data["refusal"] = data["refusal"] or {
                "reason": "no_price",
                "detail": f"the rate card has no price for {self.option.template.category}",
            }
        data["price"] = None if self.price is None else _money(self.price, self.rate_card.currency)
        data["affordable"] = self.affordable
        return data


# ------------------------------------------------------------------------ routes
class AgentApi:
    """The agent routes of one channel (see the module docstring)."""

    def __init__(self, channel: Any, runtime_for: RuntimeGetter, policy: WindowPolicy) -> None:
        self._channel = channel
        self._runtime_for = runtime_for
        self._token: str = channel.config.agent_token
        self._policy = policy
        self._resources: TemplateResources | None = None

    def register(self, blueprint: Blueprint) -> None:
        """Add the page and the API routes to ``blueprint``."""
        page = (
            ("index.html", "text/html; charset=utf-8", "/agent/", "agent_page"),
            ("app.js", "text/javascript; charset=utf-8", "/agent/app.js", "agent_script"),
            ("app.css", "text/css; charset=utf-8", "/agent/app.css", "agent_style"),
        )
        for name, content_type, uri, route_name in page:
            blueprint.add_route(_static(name, content_type), uri, name=route_name)
        api = (
            (self.queue, "/agent/api/conversations", "GET"),
            (self.conversation, CONVERSATION, "GET"),
            (self.take, CONVERSATION + "/take", "POST"),
            (self.reply, CONVERSATION + "/messages", "POST"),
            (self.templates, CONVERSATION + "/templates", "GET"),
            (self.template_preview, CONVERSATION + "/templates/preview", "POST"),
            (self.template_send, CONVERSATION + "/templates", "POST"),
            (self.hand_back, CONVERSATION + "/handback", "POST"),
            (self.media_file, "/agent/api/media/<message_id:str>", "GET"),
        )
        for handler, uri, method in api:
            blueprint.add_route(
                self._protected(handler), uri, methods=[method], name=f"agent_{handler.__name__}"
            )

    # --------------------------------------------------------------- helpers
    def _protected(self, handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            if not bearer_token_matches(request.headers.get("authorization"), self._token):
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

    @staticmethod
    def _rasa_agent(request: Request) -> Any:
        agent = getattr(request.app.ctx, "agent", None)
        if agent is None or not agent.is_ready():
            raise ApiError(503, "bot_not_ready", "the Rasa model is not loaded yet")
        return agent

    async def _update_tracker(
        self, agent: Any, conversation_id: str, events: list[Event], trigger: str | None = None
    ) -> None:
        """Append ``events`` to the conversation's tracker under its lock, then trigger the
        external intent ``trigger`` (when the domain has it) or just save."""
        output = self._channel.get_output_channel()
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

    async def _load(
        self, request: Request, conversation_id: str, *, open_only: bool
    ) -> tuple[Any, _Conversation]:
        """The runtime and the conversation; 404 when never handed over, 409 when
        ``open_only`` and it was handed back."""
        runtime = await self._runtime_for(request.app)

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

    async def _template_setup(self, runtime: Any) -> tuple[TemplateCatalogue, ledger.RateCard]:
        """The catalogue (with the statuses Meta announced) and the rate card, as the
        channel's send rules read them."""
        if self._resources is None:
            config = self._channel.config
            self._resources = TemplateResources(
                store_url=runtime.store.url,
                catalogue_path=Path(config.template_catalogue),
                rate_card_path=Path(config.rate_card),
            )
        resources = self._resources
        loop = asyncio.get_running_loop()
        try:
            catalogue = await loop.run_in_executor(None, resources.catalogue)
            rate_card = await loop.run_in_executor(None, resources.rate_card)
        except (OSError, CatalogueError, ValueError) as error:
            raise ApiError(503, "templates_unavailable", str(error)) from None
        return catalogue, rate_card

    @staticmethod
    async def _contact(request: Request, loaded: _Conversation) -> ContactContext:
        """Who a template goes to: profile name and metadata of the contact's last message,
        and the bot's slots (for ``slot:`` parameters) when the model is loaded."""
        slots: dict[str, Any] = {}
        agent = getattr(request.app.ctx, "agent", None)
        if agent is not None and agent.is_ready():
            tracker = await agent.tracker_store.retrieve(loaded.id)
            if tracker is not None:
                slots = tracker.current_slot_values()
        whatsapp = dict(loaded.contact.whatsapp) if loaded.contact else {}
        return ContactContext(
            profile_name=loaded.contact.profile_name if loaded.contact else None,
            slots=slots,
            metadata={"whatsapp": whatsapp},
        )

    @staticmethod
    def _price(
        rate_card: ledger.RateCard, template: Template, wa_id: str, window: WindowState
    ) -> int | None:
        try:
            return rate_card.expected_price(template.category, wa_id, window)
        except ValueError:
            return None

    async def _choice(
        self, request: Request, runtime: Any, loaded: _Conversation
    ) -> _TemplateChoice:
        data = _body(request)
        name = _text_field(data, "name", 512)
        language = _text_field(data, "language", 32)
        catalogue, rate_card = await self._template_setup(runtime)
        template = catalogue.get(name)
        translation = template.translation(language) if template else None
        if template is None or translation is None:
            raise ApiError(404, "no_such_template", f"no template {name!r} in {language!r}")
        overrides = _overrides(data, template)
        contact = await self._contact(request, loaded)
        window = loaded.window(time.time(), self._policy)
        return _TemplateChoice(
            template_option(template, translation, contact, overrides),
            overrides,
            contact,
            self._price(rate_card, template, loaded.wa_id, window),
            await runtime.store.run(ledger.balance),
            rate_card,
        )

    # -------------------------------------------------------------- handlers
    async def queue(self, request: Request) -> HTTPResponse:
        """``GET /conversations``: the open handovers, oldest first."""
        runtime = await self._runtime_for(request.app)
        now = time.time()
        entries = await runtime.store.run(handover.open_queue)
        conversations = [
            {
                **entry.handover.to_dict(),
                "window": window_to_dict(entry.window(now, self._policy)),
                "last_message": entry.last_message.to_dict() if entry.last_message else None,
            }
            for entry in entries
        ]
        return _json({"now": now, "conversations": conversations})

    async def conversation(self, request: Request, conversation_id: str) -> HTTPResponse:
        """``GET /conversations/<id>``: handover, summary, window and timeline."""
        runtime, loaded = await self._load(request, conversation_id, open_only=False)
        timeline = await runtime.store.run(lambda c: load_timeline(c, conversation_id))
        now = time.time()
        return _json(
            {
                "now": now,
                "handover": loaded.handover.to_dict(),
                "summary": loaded.handover.summary.to_dict(),
                "window": window_to_dict(loaded.window(now, self._policy)),
                "timeline": [entry.to_dict() for entry in timeline],
            }
        )

    async def take(self, request: Request, conversation_id: str) -> HTTPResponse:
        """``POST /conversations/<id>/take`` ``{"agent"}``: the agent takes the conversation."""
        agent_name = _text_field(_body(request), "agent", MAX_AGENT_NAME_CHARS).strip()
        agent = self._rasa_agent(request)
        runtime, _ = await self._load(request, conversation_id, open_only=True)
        taken = await runtime.store.run(lambda c: handover.take(c, conversation_id, agent_name))
        if taken is None:
            raise ApiError(409, "not_handed_over", "this conversation was handed back meanwhile")
        await self._update_tracker(
            agent, conversation_id, [SlotSet(SLOT_HANDOVER, taken.state.value)]
        )
        logger.info("Agent took conversation %s", mask_phone(conversation_id))
        return _json({"handover": taken.to_dict()})

    async def reply(self, request: Request, conversation_id: str) -> HTTPResponse:
        """``POST /conversations/<id>/messages`` ``{"text"}``: a free-form reply, inside the
        24-hour window only (409 ``window_closed`` otherwise)."""
        text = _text_field(_body(request), "text", MAX_REPLY_CHARS)
        agent = self._rasa_agent(request)
        runtime, loaded = await self._load(request, conversation_id, open_only=True)
        last_inbound = await runtime.store.last_inbound_timestamp(
            conversation_id, loaded.phone_number_id
        )
        window = store_window(last_inbound, time.time(), self._policy)
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
        await self._update_tracker(agent, conversation_id, [BotUttered(text, metadata=metadata)])
        body = {"queued": [item.id for item in queued], "window": window_to_dict(window)}
        return _json(body, 202)

    async def templates(self, request: Request, conversation_id: str) -> HTTPResponse:
        """``GET /conversations/<id>/templates``: every translation of every template,
        previewed for this contact and priced, with the balance."""
        runtime, loaded = await self._load(request, conversation_id, open_only=False)
        catalogue, rate_card = await self._template_setup(runtime)
        contact = await self._contact(request, loaded)
        now = time.time()
        window = loaded.window(now, self._policy)
        balance = await runtime.store.run(ledger.balance)
        options = [
            _TemplateChoice(
                template_option(template, translation, contact, {}),
                {},
                contact,
                self._price(rate_card, template, loaded.wa_id, window),
                balance,
                rate_card,
            ).to_dict()
            for template in catalogue.templates
            for translation in template.languages.values()
        ]
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

    async def template_preview(self, request: Request, conversation_id: str) -> HTTPResponse:
        """``POST /conversations/<id>/templates/preview`` ``{"name", "language",
        "parameters"?}``: step 3, the text with the agent's values and the price."""
        runtime, loaded = await self._load(request, conversation_id, open_only=False)
        choice = await self._choice(request, runtime, loaded)
        balance = choice.balance
        return _json(
            {
                **choice.to_dict(),
                "balance": {"available": _money(balance.available, balance.currency)},
            }
        )

    async def template_send(self, request: Request, conversation_id: str) -> HTTPResponse:
        """``POST /conversations/<id>/templates`` ``{"name", "language", "parameters"?}``:
        send it (409 when it cannot be sent, 402 when the balance does not cover it)."""
        agent = self._rasa_agent(request)
        runtime, loaded = await self._load(request, conversation_id, open_only=True)
        choice = await self._choice(request, runtime, loaded)
        described = choice.to_dict()
        if not described["sendable"] or choice.price is None:
            refusal = described["refusal"]
            raise ApiError(409, refusal["reason"], refusal["detail"], template=described)
        if not choice.affordable:
            available = choice.balance.available
            raise ApiError(
                402,
                "insufficient_balance",
                f"sending costs {ledger.format_amount(choice.price)} "
                f"{choice.rate_card.currency}; {ledger.format_amount(available)} "
                f"{choice.balance.currency} is available",
                price=_money(choice.price, choice.rate_card.currency),
                available=_money(available, choice.balance.currency),
            )
        option = choice.option
        language = option.translation.language
        prepared = prepare_template(
            TemplateCatalogue([with_values(option.template, choice.overrides)]),
            option.template.name,
            replace(choice.contact, language=language),
            default_language=language,
        )
        if isinstance(prepared, TemplateRefusal):
            raise ApiError(409, prepared.reason.value, prepared.detail)
        queued = await runtime.sender.send(
            conversation_id,
            loaded.phone_number_id,
            loaded.recipient,
            [OutboundMessage(OutboundKind.TEMPLATE, prepared.payload)],
        )
        metadata = {
            "agent": True,
            "agent_name": loaded.handover.agent,
            "template": {"name": prepared.name, "language": prepared.language},
        }
        await self._update_tracker(
            agent, conversation_id, [BotUttered(prepared.rendered_text, metadata=metadata)]
        )
        logger.info(
            "Agent sent template %s (%s) to %s",
            prepared.name,
            prepared.language,
            mask_phone(conversation_id),
        )
        return _json(
            {
                "queued": [item.id for item in queued],
                "name": prepared.name,
                "language": prepared.language,
                "text": prepared.rendered_text,
                "price": _money(choice.price, choice.rate_card.currency),
            },
            202,
        )

    async def media_file(self, request: Request, message_id: str) -> HTTPResponse:
        """``GET /media/<message_id>``: the file a contact sent, as stored.

        Served with its stored MIME type, ``X-Content-Type-Options: nosniff``, and
        ``Content-Disposition: attachment`` for anything that is not an image (so a
        contact's HTML or SVG never runs in the agent's browser); the contact's filename
        is only a download name, reduced to safe characters.
        """
        runtime = await self._runtime_for(request.app)
        record = await runtime.media.record_for(message_id)
        if record is None or record.state.value != "ready" or not record.key:
            state = record.state.value if record else "none"
            raise ApiError(404, "no_media", f"no stored file for this message ({state})")
        handle = await runtime.media.open_file(record)
        mime = record.mime_type or "application/octet-stream"
        headers = dict(SECURITY_HEADERS)
        headers["Content-Disposition"] = media_disposition(mime, record.filename, record.media_type)
        loop = asyncio.get_running_loop()

        async def stream(out: Any) -> None:
            try:
                while chunk := await loop.run_in_executor(None, handle.read, 256 * 1024):
                    await out.write(chunk)
            finally:
                handle.close()

        return response.stream(stream, content_type=mime, headers=headers)

    async def hand_back(self, request: Request, conversation_id: str) -> HTTPResponse:
        """``POST /conversations/<id>/handback``: the bot takes over again."""
        agent = self._rasa_agent(request)
        runtime, _ = await self._load(request, conversation_id, open_only=True)
        # While paused Rasa ran no action_listen after action_handoff; the rules expect
        # one before the user turn that the hand-back intent is.
        await self._update_tracker(
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
