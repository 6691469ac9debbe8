"""Rasa input and output channel for the Meta WhatsApp Cloud API.

A thin adapter: the WhatsApp knowledge (payload models, normalization, signature,
store, sending rules) lives in :mod:`whatsapp_core`; this module reads the
credentials, exposes the webhook routes, builds Rasa ``UserMessage`` objects and
routes every reply through :class:`WhatsAppOutput`.

credentials.yml::

    connectors.whatsapp_connector.WhatsAppInput:
      verify_token: ${WHATSAPP_VERIFY_TOKEN}
      app_secret: ${WHATSAPP_APP_SECRET}
      access_token: ${WHATSAPP_ACCESS_TOKEN}
      phone_number_id: ${WHATSAPP_PHONE_NUMBER_ID}
      api_base_url: ${WHATSAPP_API_BASE_URL}   # optional, default https://graph.facebook.com
      api_version: v21.0                        # optional

Routes (under ``/webhooks/whatsapp``): ``GET /`` health, ``GET /webhook`` Meta's
verification handshake, ``POST /webhook`` webhooks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.events import UserUttered
from sanic import Blueprint
from sanic.request import Request
from sqlalchemy.engine import Engine, make_url

from connectors.agent_api import register_agent_routes
from connectors.webhook_routes import add_webhook_routes
from whatsapp_core.acceptor import WebhookResult
from whatsapp_core.config import ChannelConfig
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.ingress import IngressProcess, python_module_command
from whatsapp_core.media_fetch import MediaFetcher
from whatsapp_core.media_store import load_media_store
from whatsapp_core.numbers import BusinessNumbers
from whatsapp_core.outbound import InvalidOutboundMessage, build_messages
from whatsapp_core.receiver import TEMPLATE_FAILED_INTENT, ExternalIntent, WebhookReceiver
from whatsapp_core.schema import inbox
from whatsapp_core.sender import OutboundSender, channel_sender
from whatsapp_core.store import InboxItem, WhatsAppStore
from whatsapp_core.store_location import channel_store_url

logger = logging.getLogger(__name__)

CHANNEL_NAME = "whatsapp"


class WhatsAppOutput(OutputChannel):
    """Sends one conversation's replies through the outbound sender (never raises)."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    def __init__(
        self,
        sender: OutboundSender,
        *,
        conversation_id: str | None = None,
        phone_number_id: str | None = None,
        recipient: str | None = None,
        numbers: BusinessNumbers | None = None,
    ) -> None:
        """Bound to one conversation (a webhook turn), or, with ``numbers`` only, to
        whatever conversation Rasa names (``trigger_intent``, reminders)."""
        self._sender = sender
        self._conversation_id = conversation_id
        self._phone_number_id = phone_number_id
        self._recipient = recipient
        self._numbers = numbers

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        """Format a whole bot response (text, buttons, image, custom...) and queue it.

        An invalid response is logged and recorded as failed for the conversation;
        nothing is raised into Rasa (that would lose the whole turn).
        """
        conversation_id = self._conversation_id or recipient_id
        recipient, phone_number_id = self._recipient, self._phone_number_id
        if recipient is None and self._numbers is not None:
            recipient, phone_number_id = self._numbers.address(recipient_id)
        recipient = recipient or recipient_id
        try:
            messages = build_messages(message)
        except InvalidOutboundMessage as error:
            logger.error("WhatsApp reply not sent, invalid response: %s", error)
            await self._sender.record_invalid(
                conversation_id, phone_number_id, recipient, message, str(error)
            )
            return
        if messages:
            await self._sender.send(conversation_id, phone_number_id, recipient, messages)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_response(recipient_id, {"text": text, "buttons": buttons})

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_response(recipient_id, {"text": text, "quick_replies": quick_replies})

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"image": image})

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"attachment": attachment})

    async def send_elements(
        self, recipient_id: str, elements: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_response(recipient_id, {"elements": elements})

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        await self.send_response(recipient_id, {"custom": json_message})


class _Runtime:
    """Store, Graph client, sending rules, sender and receiver of one running server."""

    def __init__(
        self, config: ChannelConfig, store_url: str, turn, already_handled, trigger
    ) -> None:
        self.store = WhatsAppStore(store_url, instance_id=_instance_id())
        self.graph = GraphClient(
            config.api_base_url, config.api_version, timeout=config.send_timeout_seconds
        )
        self.sender = channel_sender(
            config,
            self.store,
            self.graph,
            store_url,
            on_template_failure=self._template_failed,
            schedules_follow_ups=True,
        )
        self.media = MediaFetcher(  # media (issue #10): inbound files, see docs/media.md
            self.store,
            self.graph,
            load_media_store(config.media_store, config.media_dir),
            access_token_for=config.numbers.access_token,
            max_bytes=config.media_max_bytes,
        )
        self.receiver = WebhookReceiver(
            config,
            self.store,
            self.sender,
            turn,
            already_handled,
            trigger,
            media=self.media,
        )
        self.ingress: IngressProcess | None = None

    def _template_failed(
        self, conversation_id: str, phone_number_id: str | None, reason: str
    ) -> None:
        self.receiver.submit_external(
            ExternalIntent(
                conversation_id, TEMPLATE_FAILED_INTENT, {"reason": reason}, phone_number_id
            )
        )

    async def start_ingress(self, credentials: dict[str, Any], store_url: str) -> None:
        """Start the ingress process (``ingress_port``): see :mod:`whatsapp_core.ingress`."""
        self.ingress = IngressProcess(
            python_module_command("connectors.whatsapp_ingress"),
            {
                "credentials": credentials,
                "store_url": store_url,
                "instance_id": self.store.instance_id,
                "log_level": logging.getLevelName(logger.getEffectiveLevel()),
            },
            self.receiver.dispatch,
            self._template_failed,
        )
        await self.ingress.start()
        self.sender.hand_off_to(self.ingress.deliver)

    async def close(self) -> None:
        if self.ingress is not None:
            self.sender.hand_off_to(None)
            await self.ingress.stop()
        await self.receiver.stop()
        await self.media.stop()
        await self.graph.close()
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)


class WhatsAppInput(InputChannel):
    """Receives WhatsApp Cloud API webhooks and turns each contact message into a turn."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WhatsAppInput:
        """Build the channel; a missing required key fails start-up naming the key."""
        return cls(ChannelConfig.from_credentials(credentials), credentials)

    def __init__(self, config: ChannelConfig, credentials: dict[str, Any] | None = None) -> None:
        """``credentials``: the raw entry, handed to the ingress process when it is used."""
        self.config = config
        self._credentials = dict(credentials or {})
        self._runtime: _Runtime | None = None
        self._runtime_lock: asyncio.Lock | None = None

    async def runtime(
        self, app: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> _Runtime:
        """The running store/sender/receiver, started on first use (idempotent)."""
        if self._runtime is not None:
            return self._runtime
        if self._runtime_lock is None:
            self._runtime_lock = asyncio.Lock()
        async with self._runtime_lock:
            if self._runtime is None:
                self._runtime = await self._start(app, on_new_message)
        return self._runtime

    async def _start(self, app: Any, on_new_message) -> _Runtime:
        runtime: _Runtime

        async def turn(item: InboxItem) -> None:
            output = WhatsAppOutput(
                runtime.sender,
                conversation_id=item.conversation_id,
                phone_number_id=item.phone_number_id,
                recipient=item.recipient,
            )
            await on_new_message(
                UserMessage(
                    item.text,
                    output,
                    item.conversation_id,
                    input_channel=CHANNEL_NAME,
                    message_id=item.message_id,
                    metadata=item.metadata,
                )
            )

        async def already_handled(item: InboxItem) -> bool:
            tracker_store = getattr(getattr(app.ctx, "agent", None), "tracker_store", None)
            if tracker_store is None:
                return False
            tracker = await tracker_store.retrieve(item.conversation_id)
            return tracker is not None and any(
                isinstance(event, UserUttered) and event.message_id == item.message_id
                for event in tracker.events
            )

        async def trigger(external: ExternalIntent) -> None:
            """Trigger an intent the channel raises (delivery failure, follow-up...)."""
            agent = getattr(app.ctx, "agent", None)
            if agent is None or not agent.is_ready():
                return
            if external.intent not in agent.domain.intents:
                logger.info("WhatsApp: %s is not in the domain; not triggered", external.intent)
                return
            recipient, phone_number_id = self.config.numbers.address(external.conversation_id)
            output = WhatsAppOutput(
                runtime.sender,
                conversation_id=external.conversation_id,
                phone_number_id=external.phone_number_id or phone_number_id,
                recipient=recipient,
            )
            async with agent.lock_store.lock(external.conversation_id):
                tracker = await agent.processor.fetch_tracker_and_update_session(
                    external.conversation_id, output
                )
                await agent.trigger_intent(external.intent, external.entities, output, tracker)

        loop = asyncio.get_running_loop()
        store_url = self.config.store_url
        if store_url is None:
            tracker_engine = _tracker_store_engine(app)
            store_url = channel_store_url(
                None if tracker_engine is None else _full_url(tracker_engine)
            )
            if tracker_engine is not None:
                await loop.run_in_executor(
                    None, warn_about_tables_left_behind, tracker_engine, store_url
                )
        runtime = await loop.run_in_executor(
            None, lambda: _Runtime(self.config, store_url, turn, already_handled, trigger)
        )
        logger.info("WhatsApp channel store: %s", _redact_url(store_url))
        await runtime.receiver.recover()
        await runtime.media.recover()
        runtime.receiver.start()
        runtime.sender.start(renew_every_seconds=self.config.recovery_lease_seconds / 2)
        if self.config.ingress_port:
            await runtime.start_ingress(self._credentials, store_url)
        return runtime

    async def stop(self) -> None:
        """Stop background work and close connections (called when the server stops)."""
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            await runtime.close()

    def get_output_channel(self) -> OutputChannel | None:
        """Output for replies Rasa sends outside a webhook turn (trigger_intent, reminders)."""
        if self._runtime is None:
            return None
        return WhatsAppOutput(self._runtime.sender, numbers=self.config.numbers)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("whatsapp_webhook", __name__)

        @webhook.listener("after_server_start")
        async def start(app: Any, _loop: Any) -> None:
            await self.runtime(app, on_new_message)

        @webhook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            await self.stop()

        async def receive(request: Request, body: bytes, signature: str | None) -> WebhookResult:
            runtime = await self.runtime(request.app, on_new_message)
            return await runtime.receiver.receive(body, signature)

        add_webhook_routes(webhook, self.config.verify_token, receive)
        register_agent_routes(webhook, self, lambda app: self.runtime(app, on_new_message))
        return webhook


def _tracker_store_engine(app: Any) -> Engine | None:
    """The engine of Rasa's SQL tracker store, unwrapping Rasa's wrappers (None: not SQL)."""
    store = getattr(getattr(app.ctx, "agent", None), "tracker_store", None)
    while store is not None and not hasattr(store, "engine"):
        store = getattr(store, "_tracker_store", None)
    return None if store is None else store.engine


def _full_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def warn_about_tables_left_behind(tracker_engine: Engine, store_url: str) -> None:
    """Log a warning when the channel's tables are in the tracker store's SQLite file but
    the channel now uses another file (earlier versions kept them in the tracker store's
    file): its inbox, outbox, ledger and handover queue would otherwise seem to vanish."""
    tracker_url = _full_url(tracker_engine)
    if tracker_url == store_url or not sa.inspect(tracker_engine).has_table(inbox.name):
        return
    old = _redact_url(tracker_url)
    logger.warning(
        "WhatsApp channel: %s holds the channel's tables from an earlier version, but the "
        "channel now keeps them in %s. To keep using them, set store_url: %s in "
        "credentials.yml and WHATSAPP_STORE_URL=%s for the action server",
        old, _redact_url(store_url), old, old,
    )


def _redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
