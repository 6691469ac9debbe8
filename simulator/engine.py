"""The simulated Cloud API, independent of HTTP: what happens on each Graph API call and each
control operation. :mod:`simulator.graph_api` and :mod:`simulator.control_api` map HTTP onto it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import yarl

from simulator.clock import SimClock
from simulator.config import PhoneNumber, SimulatorConfig
from simulator.errors import (
    MARKETING_LIMIT_ERROR,
    RE_ENGAGEMENT_ERROR,
    REACTION_TARGET_ERROR,
    TITLES,
    UNDELIVERABLE_ERROR,
    ControlError,
    ErrorCode,
    GraphError,
    missing,
    unknown_object,
)
from simulator.faults import FaultPlan
from simulator.inbound import InboundContext, build_inbound
from simulator.media import (
    MAX_BYTES,
    SUPPORTED_MIME_TYPES,
    UPLOADED_MEDIA_TTL_SECONDS,
    MediaItem,
    MediaStore,
    base_mime,
)
from simulator.pricing import price
from simulator.state import (
    Behaviour,
    InboundMessage,
    MessageStatus,
    ReadReceipt,
    SentMessage,
    SimState,
    StatusEvent,
)
from simulator.stats import Stats
from simulator.templates import (
    Template,
    TemplateStatus,
    TemplateStore,
    encode_cursor,
    load_templates,
)
from simulator.validation import (
    MarkRead,
    MessageType,
    OutboundMessage,
    ValidationContext,
    parse_messages_request,
)
from simulator.webhooks import WebhookDispatcher, field_envelope, messages_envelope, sign

REACTION_MAX_AGE_SECONDS = 30 * 24 * 3600
MAX_TEMPLATE_PAGE = 1000
DEFAULT_TEMPLATE_PAGE = 25
FULL_STATUS_SEQUENCE = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ]
STATUSES_FOR: dict[Behaviour, list[MessageStatus]] = {
    Behaviour.ONLINE: FULL_STATUS_SEQUENCE,
    Behaviour.MARKETING_LIMIT: FULL_STATUS_SEQUENCE,
    Behaviour.NO_READ_RECEIPTS: FULL_STATUS_SEQUENCE[:2],
    Behaviour.OFFLINE: FULL_STATUS_SEQUENCE[:1],
}


def new_wamid(wa_id: str) -> str:
    """A unique message id shaped like Meta's (``wamid.HBgL...``)."""
    raw = wa_id.encode() + b"\x15\x02\x00\x11\x18\x12" + secrets.token_hex(10).upper().encode()
    return "wamid.HBgL" + base64.b64encode(raw + b"\x00").decode()


class CloudApiSimulator:
    """All simulator state and behaviour. Call :meth:`start` in the running loop before use and
    :meth:`close` at shutdown (``create_app`` does both)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clock = SimClock()
        self.templates = TemplateStore(load_templates(config.templates_path))
        self.media = MediaStore()
        self.state = SimState()
        self.faults = FaultPlan()
        self.stats = Stats()
        self.webhooks = WebhookDispatcher(config, self.stats)

    async def start(self) -> None:
        await self.webhooks.start()

    async def close(self) -> None:
        await self.webhooks.close()

    # --- Graph API -------------------------------------------------------------------------

    def authorize(self, authorization: str | None) -> None:
        """Require ``Authorization: Bearer <access token>``; 401 / code 190 otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            token.strip().encode(), self.config.access_token.encode()
        ):
            raise GraphError(
                ErrorCode.ACCESS_TOKEN,
                "Invalid OAuth access token.",
                http_status=401,
                message=TITLES[ErrorCode.ACCESS_TOKEN],
            )

    def sender(self, phone_number_id: str) -> PhoneNumber:
        """The configured business number, or Graph's 100 error for an unknown id."""
        phone = self.config.phone_number(phone_number_id)
        if phone is None:
            raise unknown_object(phone_number_id)
        return phone

    def handle_messages(self, phone: PhoneNumber, body: Any) -> dict[str, Any]:
        """``POST /{phone-number-id}/messages``: a send or a mark-as-read."""
        now = self.clock.now()
        request = parse_messages_request(
            body, ValidationContext(phone, self.media, self.templates, now)
        )
        if isinstance(request, MarkRead):
            return self._mark_read(phone, request, now)
        return self._accept(phone, request, now)

    def _mark_read(self, phone: PhoneNumber, request: MarkRead, now: float) -> dict[str, Any]:
        inbound = self.state.inbound.get(request.message_id)
        if inbound is None or inbound.phone_number_id != phone.id:
            raise GraphError(
                ErrorCode.INVALID_PARAMETER,
                f"message_id: '{request.message_id}' is not a message this number received.",
            )
        self.state.read_receipts.append(
            ReadReceipt(request.message_id, phone.id, inbound.wa_id, request.typing, int(now))
        )
        self.stats.marks_read += 1
        return {"success": True}

    def _accept(self, phone: PhoneNumber, request: OutboundMessage, now: float) -> dict[str, Any]:
        rendered = request.rendered
        record = SentMessage(
            wamid=new_wamid(request.wa_id),
            phone_number_id=phone.id,
            to=request.to,
            wa_id=request.wa_id,
            type=request.type.value,
            payload=request.payload,
            accepted_at=now,
            rendered_text=rendered.text if rendered else None,
            rendered=rendered.to_json() if rendered else None,
            template_category=rendered.template.category.value.lower() if rendered else None,
            callback_data=request.callback_data,
        )
        statuses = self._plan(record, request, now)
        self.state.add_sent(record)
        self.stats.sends_accepted += 1
        self._schedule(record, statuses)
        message: dict[str, Any] = {"id": record.wamid}
        if request.type is MessageType.TEMPLATE:
            message["message_status"] = "accepted"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": request.to, "wa_id": request.wa_id}],
            "messages": [message],
        }

    def _plan(
        self, record: SentMessage, request: OutboundMessage, now: float
    ) -> list[MessageStatus]:
        """Decide the message's fate at acceptance time: its status sequence, error, pricing."""
        contact = self.state.contact(request.wa_id)
        conversation = self.state.conversation(record.phone_number_id, request.wa_id)
        if request.type is not MessageType.TEMPLATE and not conversation.service_window_open(now):
            record.error = RE_ENGAGEMENT_ERROR
        elif contact.behaviour in (Behaviour.BLOCKED, Behaviour.UNDELIVERABLE):
            record.error = UNDELIVERABLE_ERROR
        elif (
            contact.behaviour is Behaviour.MARKETING_LIMIT
            and record.template_category == "marketing"
        ):
            record.error = MARKETING_LIMIT_ERROR
        elif request.type is MessageType.REACTION and not self._reaction_target_ok(
            record, str(request.payload["reaction"]["message_id"]), now
        ):
            record.error = REACTION_TARGET_ERROR
        if record.error is not None:
            return [MessageStatus.FAILED]
        conversation.open_free_entry_if_due(now)
        record.pricing = price(conversation, now, record.template_category)
        if conversation.free_entry_open(now):
            record.free_entry_id = conversation.free_entry_id
            record.free_entry_until = conversation.free_entry_until
        if request.type is MessageType.REACTION:
            return [MessageStatus.SENT]
        statuses = list(STATUSES_FOR[contact.behaviour])
        if contact.behaviour is Behaviour.OFFLINE:
            record.withheld = FULL_STATUS_SEQUENCE[len(statuses) :]
        return statuses

    def _reaction_target_ok(self, record: SentMessage, target: str, now: float) -> bool:
        """A reaction must target a message of this chat from the last 30 days."""
        inbound = self.state.inbound.get(target)
        if inbound is not None:
            return (
                inbound.wa_id == record.wa_id
                and inbound.phone_number_id == record.phone_number_id
                and now - inbound.timestamp <= REACTION_MAX_AGE_SECONDS
            )
        sent = self.state.sent_by_id.get(target)
        return (
            sent is not None
            and sent.wa_id == record.wa_id
            and sent.type != MessageType.REACTION.value
            and now - sent.accepted_at <= REACTION_MAX_AGE_SECONDS
        )

    def _schedule(self, record: SentMessage, statuses: list[MessageStatus]) -> None:
        """Emit ``statuses`` in the background, after any emission already running for it."""
        previous = record.emission
        record.emission = self.webhooks.spawn(self._emit(record, statuses, previous))

    async def _emit(
        self,
        record: SentMessage,
        statuses: list[MessageStatus],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        delay = self.config.status_delay_seconds
        held_back: list[dict[str, Any]] = []
        for status in statuses:
            await asyncio.sleep(delay)
            event = StatusEvent(status, int(self.clock.now()))
            record.history.append(event)
            payload = self._status_webhook(record, event)
            if self.faults.reorder_statuses:
                held_back.append(payload)
            else:
                await self._deliver(payload)
        for payload in reversed(held_back):
            await self._deliver(payload)

    async def _deliver(self, payload: dict[str, Any]) -> None:
        copies = 2 if self.faults.duplicate_webhooks else 1
        for copy in range(copies):
            if copy:
                self.stats.webhooks["duplicates"] += 1
            await self.webhooks.deliver(payload)

    def _status_webhook(self, record: SentMessage, event: StatusEvent) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": record.wamid,
            "status": event.status.value,
            "timestamp": str(event.timestamp),
            "recipient_id": record.wa_id,
        }
        if record.callback_data is not None:
            item["biz_opaque_callback_data"] = record.callback_data
        if event.status is MessageStatus.FAILED:
            assert record.error is not None
            item["errors"] = [record.error.to_json()]
        else:
            conversation = record.conversation_json(
                with_expiration=event.status is MessageStatus.SENT
            )
            if conversation is not None:
                item["conversation"] = conversation
            if record.pricing is not None and event.status in (
                MessageStatus.SENT,
                MessageStatus.DELIVERED,
            ):
                item["pricing"] = record.pricing.to_json()
        phone = self.sender(record.phone_number_id)
        return messages_envelope(self.config.waba_id, phone, {"statuses": [item]})

    def upload_media(
        self,
        *,
        messaging_product: str | None,
        data: bytes | None,
        mime_type: str | None,
    ) -> dict[str, Any]:
        """``POST /{phone-number-id}/media``: store a file, answer its media id."""
        if messaging_product is None:
            raise missing("messaging_product")
        if messaging_product != "whatsapp":
            raise GraphError(
                ErrorCode.INVALID_PARAMETER, "Param messaging_product must be 'whatsapp'."
            )
        if data is None:
            raise missing("file")
        if not mime_type:
            raise missing("type")
        kind = SUPPORTED_MIME_TYPES.get(base_mime(mime_type))
        if kind is None:
            raise GraphError(
                ErrorCode.MEDIA_UPLOAD_ERROR,
                f"type: MIME type '{mime_type}' is not supported for WhatsApp media.",
            )
        if not data:
            raise GraphError(ErrorCode.MEDIA_UPLOAD_ERROR, "file: the file is empty.")
        if len(data) > MAX_BYTES[kind]:
            raise GraphError(
                ErrorCode.MEDIA_UPLOAD_ERROR,
                f"file: {len(data)} bytes is over the {kind.value} limit of "
                f"{MAX_BYTES[kind]} bytes.",
            )
        item = self.media.add(
            data,
            mime_type,
            now=self.clock.now(),
            ttl_seconds=UPLOADED_MEDIA_TTL_SECONDS,
        )
        return {"id": item.id}

    def download_url(self, base_url: str, item: MediaItem) -> str:
        """A new download URL for ``item`` on this simulator, valid 5 simulated minutes."""
        link = self.media.issue_link(item.id, self.clock.now())
        query = {"mid": item.id, "ext": str(int(link.expires_at)), "hash": link.token}
        return str(
            yarl.URL(base_url).with_path("/whatsapp_business/attachments/").with_query(query)
        )

    def media_metadata(self, media_id: str, base_url: str) -> dict[str, Any]:
        """``GET /{media-id}``: metadata and a fresh download URL."""
        item = self.media.get(media_id, self.clock.now())
        if item is None:
            raise unknown_object(media_id, "get")
        return {
            "messaging_product": "whatsapp",
            "url": self.download_url(base_url, item),
            "mime_type": item.mime_type,
            "sha256": item.sha256_hex,
            "file_size": item.file_size,
            "id": item.id,
        }

    def download(self, media_id: str, token: str) -> MediaItem | None:
        """The file a download URL grants, or None (unknown or expired: answer 404)."""
        return self.media.resolve_link(token, media_id, self.clock.now())

    def list_templates(
        self,
        waba_id: str,
        query: Mapping[str, str],
        page_url: Callable[[dict[str, str]], str],
    ) -> dict[str, Any]:
        """``GET /{waba-id}/message_templates`` with ``limit``/``after``/``before``/``status``/
        ``fields``; ``page_url`` builds the absolute ``next``/``previous`` URLs."""
        if waba_id != self.config.waba_id:
            raise unknown_object(waba_id, "get")
        raw_limit = query.get("limit", str(DEFAULT_TEMPLATE_PAGE))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_TEMPLATE_PAGE:
            raise GraphError(
                ErrorCode.INVALID_PARAMETER,
                f"limit: must be an integer between 1 and {MAX_TEMPLATE_PAGE}.",
            )
        status = None
        if query.get("status"):
            try:
                status = TemplateStatus(query["status"].upper())
            except ValueError:
                raise GraphError(
                    ErrorCode.INVALID_PARAMETER, f"status: unknown status {query['status']!r}."
                ) from None
        fields = None
        if query.get("fields"):
            fields = [f.strip() for f in query["fields"].split(",") if f.strip()]
        page = self.templates.page(
            limit=int(raw_limit),
            after=query.get("after"),
            before=query.get("before"),
            status=status,
        )
        result: dict[str, Any] = {"data": [t.to_json(fields) for t in page.items]}
        if page.items:
            cursors = {
                "before": encode_cursor(page.items[0]),
                "after": encode_cursor(page.items[-1]),
            }
            paging: dict[str, Any] = {"cursors": cursors}
            if page.has_next:
                paging["next"] = page_url({"after": cursors["after"]})
            if page.has_previous:
                paging["previous"] = page_url({"before": cursors["before"]})
            result["paging"] = paging
        return result

    # --- control operations ----------------------------------------------------------------

    def control_phone(self, phone_number_id: Any) -> PhoneNumber:
        """The business number a control request names (default: the first configured)."""
        if phone_number_id is None:
            return self.config.default_phone
        phone = self.config.phone_number(str(phone_number_id))
        if phone is None:
            raise ControlError(f"unknown phone_number_id {phone_number_id!r}")
        return phone

    def _register_inbound(
        self,
        phone: PhoneNumber,
        wa_id: str,
        wamid: str,
        now: float,
        referral: dict[str, Any] | None,
    ) -> None:
        if wamid:
            self.state.inbound[wamid] = InboundMessage(wamid, phone.id, wa_id, now)
        self.state.conversation(phone.id, wa_id).record_inbound(now, referral)

    async def play_inbound(self, spec: Any, base_url: str) -> dict[str, Any]:
        """``POST /_sim/inbound``: deliver a contact's message to the bot and open/renew the
        service window. Returns after the bot answered the first delivery (of each copy when
        webhooks are duplicated); failed deliveries are retried in the background."""
        if not isinstance(spec, dict):
            raise ControlError("body must be a JSON object")
        phone = self.control_phone(spec.get("phone_number_id"))
        raw = spec.get("raw")
        wa_id = spec.get("from", raw.get("from") if isinstance(raw, dict) else None)
        if not isinstance(wa_id, str) or not wa_id.isdigit():
            raise ControlError("'from' must be the contact's wa_id (digits)")
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            raise ControlError("'name' must be a string")
        contact = self.state.contact(wa_id, name)
        now = self.clock.now()
        built = build_inbound(
            spec,
            InboundContext(
                phone=phone,
                wa_id=wa_id,
                wamid=new_wamid(wa_id),
                now=now,
                media=self.media,
                download_url=lambda item: self.download_url(base_url, item),
                sent_interactive_type=self._sent_interactive_type,
            ),
        )
        message = built.message
        wamid = str(message.get("id", ""))
        referral = message.get("referral")
        self._register_inbound(
            phone, wa_id, wamid, now, referral if isinstance(referral, dict) else None
        )
        self.stats.inbound_played += 1
        contacts = [{"profile": {"name": contact.name}, "wa_id": wa_id}]
        payload = messages_envelope(
            self.config.waba_id, phone, {"contacts": contacts, "messages": [message]}
        )
        copies = 2 if self.faults.duplicate_webhooks else 1
        attempts = await self.webhooks.deliver_acknowledged(payload, copies=copies)
        result: dict[str, Any] = {
            "wamid": wamid,
            "timestamp": str(int(now)),
            "webhook_status": attempts[0].status,
            "deliveries": [attempt.to_json() for attempt in attempts],
        }
        if built.media is not None:
            result["media_id"] = built.media.id
        return result

    def _sent_interactive_type(self, wamid: str) -> str | None:
        sent = self.state.sent_by_id.get(wamid)
        if sent is None or sent.type != MessageType.INTERACTIVE.value:
            return None
        return str(sent.payload["interactive"]["type"])

    async def post_raw_webhook(
        self, body: bytes, *, signed: bool, secret: str | None
    ) -> dict[str, Any]:
        """``POST /_sim/webhook``: forward ``body`` byte for byte, signed with the app secret
        (or ``secret``; unsigned if not ``signed``), once, without retries. Messages inside a
        well-formed body are registered like played ones (window, mark-as-read)."""
        self._register_raw_messages(body)
        signature = sign(body, secret or self.config.app_secret) if signed else None
        attempt = await self.webhooks.post(body, signature=signature)
        return {"webhook_status": attempt.status, "response": attempt.to_json()}

    def _register_raw_messages(self, body: bytes) -> None:
        try:
            envelope = json.loads(body)
            changes = [c for e in envelope["entry"] for c in e["changes"]]
        except (ValueError, KeyError, TypeError):
            return
        now = self.clock.now()
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            phone = self.config.phone_number(
                str((value.get("metadata") or {}).get("phone_number_id"))
            )
            for message in value.get("messages") or []:
                if (
                    phone
                    and isinstance(message, dict)
                    and message.get("from")
                    and message.get("id")
                ):
                    referral = message.get("referral")
                    self._register_inbound(
                        phone,
                        str(message["from"]),
                        str(message["id"]),
                        now,
                        referral if isinstance(referral, dict) else None,
                    )

    async def verify_webhook(self, verify_token: str, challenge: str | None) -> dict[str, Any]:
        """``POST /_sim/verify``: Meta's GET handshake against the webhook URL."""
        if not self.config.webhook_url:
            raise ControlError("webhook delivery is disabled (no webhook URL)")
        challenge = challenge or str(secrets.randbelow(10**10))
        url = yarl.URL(self.config.webhook_url).update_query(
            {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
        )
        attempt = await self.webhooks.get(str(url))
        return {
            "status": attempt.status,
            "body": attempt.text,
            "challenge": challenge,
            "verified": attempt.status == 200 and attempt.text == challenge,
        }

    def set_contact(self, wa_id: str, *, behaviour: str | None, name: str | None) -> dict[str, Any]:
        """``POST /_sim/contacts/{wa_id}``. Switching an offline contact to a delivering
        behaviour produces the withheld ``delivered``/``read`` statuses."""
        contact = self.state.contact(wa_id, name)
        if behaviour is not None:
            try:
                contact.behaviour = Behaviour(behaviour)
            except ValueError:
                choices = ", ".join(b.value for b in Behaviour)
                raise ControlError(f"behaviour must be one of {choices}") from None
            if contact.behaviour in STATUSES_FOR and contact.behaviour is not Behaviour.OFFLINE:
                produces = STATUSES_FOR[contact.behaviour]
                for record in self.state.messages(wa_id):
                    statuses = [s for s in record.withheld if s in produces]
                    record.withheld = []
                    if statuses:
                        self._schedule(record, statuses)
        return self.contact_info(wa_id)

    def contact_info(self, wa_id: str) -> dict[str, Any]:
        """The contact, with its window state per business number."""
        now = self.clock.now()
        contact = self.state.contact(wa_id)
        windows = {
            phone_id: conversation.to_json(now)
            for (phone_id, contact_id), conversation in self.state.conversations.items()
            if contact_id == wa_id
        }
        return {**contact.to_json(), "windows": windows}

    async def upsert_template(self, data: Any) -> dict[str, Any]:
        """``POST /_sim/templates``: add or replace a template. A status change of an existing
        template is announced with a ``message_template_status_update`` webhook."""
        if not isinstance(data, dict):
            raise ControlError("body must be a template object")
        try:
            template = Template.from_json(data)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        previous = self.templates.upsert(template)
        result: dict[str, Any] = {"template": template.to_json(), "webhook_status": None}
        if previous is not None and previous.status is not template.status:
            value = {
                "event": template.status.value,
                "message_template_id": int(template.id),
                "message_template_name": template.name,
                "message_template_language": template.language,
                "reason": str(data.get("reason", "NONE")),
            }
            payload = field_envelope(
                self.config.waba_id, "message_template_status_update", value, self.clock.now()
            )
            attempts = await self.webhooks.deliver_acknowledged(payload, copies=1)
            result["webhook_status"] = attempts[0].status
        return result

    def set_webhook_url(self, url: str | None) -> str | None:
        """``POST /_sim/config``: deliver webhooks (and retries still pending) to ``url`` from
        now on; None or empty disables delivery. Kept by :meth:`reset`."""
        self.config = dataclasses.replace(self.config, webhook_url=url or None)
        self.webhooks.reconfigure(self.config)
        return self.config.webhook_url

    async def reset(self) -> None:
        """Forget everything: state, media, template changes, faults, stats, clock offset."""
        await self.webhooks.cancel_all()
        self.state.clear()
        self.media.clear()
        self.templates.reset()
        self.faults.clear()
        self.stats.clear()
        self.clock.reset()
