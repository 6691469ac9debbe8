"""Typed models of a WhatsApp Cloud API webhook body, parsed once at the edge.

A POST body is ``{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
"changes": [{"field": <name>, "value": {...}}]}]}``. :meth:`WebhookEnvelope.parse`
checks that shape and returns frozen dataclasses; everything after it works on
these types, never on the raw dicts (the raw JSON of each message stays available
in ``raw`` for agents and audits).

Parsing is strict about the envelope (a body that is not a WhatsApp Business
Account envelope is rejected with :class:`InvalidWebhook`) and lenient inside it:
unknown fields, message types and status values are kept as they are, so a kind
Meta adds tomorrow never crashes the parser. Reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

WABA_OBJECT = "whatsapp_business_account"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest body accepted (Meta documents payloads up to 3 MB)."""
MAX_UPDATES_PER_BODY = 5000
"""Meta batches at most 1,000 updates per POST; more is not Meta and is refused."""


class InvalidWebhook(ValueError):
    """The body is not a WhatsApp webhook we accept; ``http_status`` says how to answer."""

    def __init__(self, reason: str, http_status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class WebhookField(str, Enum):
    """The ``changes[].field`` values this package routes by name."""

    MESSAGES = "messages"
    TEMPLATE_STATUS = "message_template_status_update"
    TEMPLATE_QUALITY = "message_template_quality_update"
    TEMPLATE_COMPONENTS = "message_template_components_update"
    TEMPLATE_CATEGORY = "template_category_update"
    SMB_MESSAGE_ECHOES = "smb_message_echoes"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, value: str) -> WebhookField:
        """Map a raw field name to a member; names we do not route are ``UNKNOWN``."""
        return cls._value2member_map_.get(value, cls.UNKNOWN)  # cls(value) costs a raise


def valid_unicode(text: str) -> str:
    """``text`` without lone UTF-16 surrogates (valid JSON escapes such as ``\\ud800``, but
    not text a database or NLU can store): each becomes U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _str(value: Any) -> str | None:
    """A non-empty string form of an id-like value (YAML/JSON may give ints), else None."""
    if type(value) is str and value.isascii():  # the usual case, first (hot path)
        return value.strip() or None
    if value is None or isinstance(value, (dict, list)):
        return None
    text = valid_unicode(str(value)).strip()
    return text or None


MAX_INT = 2**53
"""Larger numbers are not timestamps or codes Meta sends (and overflow SQL integers)."""


def _int(value: Any) -> int | None:
    """Unix seconds from Meta's string timestamps; None for placeholders or garbage."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        digits = value.strip()
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 16):
            return None
        value = int(digits)
    if isinstance(value, int) and 0 <= value < MAX_INT:
        return value
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class MetaError:
    """One item of an ``errors[]`` array (messages, statuses or ``value.errors``)."""

    code: int | None
    title: str
    message: str
    details: str
    href: str | None

    @classmethod
    def from_dict(cls, data: Any) -> MetaError:
        data = _dict(data)
        return cls(
            code=_int(data.get("code")),
            title=str(data.get("title") or ""),
            message=str(data.get("message") or data.get("title") or ""),
            details=str(_dict(data.get("error_data")).get("details") or data.get("details") or ""),
            href=_str(data.get("href")),
        )


def _errors(value: Any) -> tuple[MetaError, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(MetaError.from_dict(item) for item in value if isinstance(item, dict))


@dataclass(frozen=True, slots=True)
class BusinessNumber:
    """``value.metadata``: the business phone number the webhook is about."""

    phone_number_id: str | None
    display_phone_number: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    """A ``contacts[]`` item: who wrote. ``wa_id`` may be absent in the BSUID era."""

    wa_id: str | None
    user_id: str | None
    parent_user_id: str | None
    profile_name: str | None
    username: str | None

    @classmethod
    def from_dict(cls, data: Any) -> Contact:
        data = _dict(data)
        profile = _dict(data.get("profile"))
        return cls(
            wa_id=_str(data.get("wa_id")),
            user_id=_str(data.get("user_id")),
            parent_user_id=_str(data.get("parent_user_id")),
            profile_name=_str(profile.get("name")),
            username=_str(profile.get("username")),
        )


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A ``messages[]`` item: one thing a contact sent.

    ``type`` is Meta's type string as sent (``text``, ``image``, ``interactive``,
    ``unsupported``, a future type...); ``content`` is the sub-object named after it
    (``{}`` when Meta sent none). ``timestamp`` is WhatsApp's send time in unix
    seconds, ``None`` when Meta's value is not a number.
    """

    id: str | None
    from_wa_id: str | None
    from_user_id: str | None
    timestamp: int | None
    type: str
    content: dict[str, Any]
    has_content: bool
    context: dict[str, Any]
    referral: dict[str, Any]
    errors: tuple[MetaError, ...]
    group_id: str | None
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboundMessage:
        msg_type = _str(data.get("type")) or "unknown"
        content = data.get(msg_type)
        return cls(
            id=_str(data.get("id")),
            from_wa_id=_str(data.get("from")),
            from_user_id=_str(data.get("from_user_id")) or _str(data.get("from_parent_user_id")),
            timestamp=_int(data.get("timestamp")),
            type=msg_type,
            content=_dict(content),
            has_content=isinstance(content, (dict, list)),
            context=_dict(data.get("context")),
            referral=_dict(data.get("referral")),
            errors=_errors(data.get("errors")),
            group_id=_str(data.get("group_id")),
            raw=data,
        )


class DeliveryState(str, Enum):
    """``statuses[].status`` values, ordered by how far a message got."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, value: Any) -> DeliveryState:
        return cls._value2member_map_.get(str(value), cls.UNKNOWN)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A ``statuses[]`` item: what happened to a message the business sent."""

    id: str | None
    state: DeliveryState
    timestamp: int | None
    recipient_id: str | None
    errors: tuple[MetaError, ...]
    pricing: dict[str, Any]
    conversation: dict[str, Any]
    biz_opaque_callback_data: str | None
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusUpdate:
        conversation = _dict(data.get("conversation"))
        # One Meta example nests pricing inside conversation; accept both places.
        pricing = _dict(data.get("pricing")) or _dict(conversation.get("pricing"))
        return cls(
            id=_str(data.get("id")),
            state=DeliveryState.of(data.get("status")),
            timestamp=_int(data.get("timestamp")),
            recipient_id=_str(data.get("recipient_id")) or _str(data.get("recipient_user_id")),
            errors=_errors(data.get("errors")),
            pricing=pricing,
            conversation=conversation,
            biz_opaque_callback_data=_str(data.get("biz_opaque_callback_data")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Change:
    """One ``entry[].changes[]`` item, with the ``messages`` field's lists typed."""

    waba_id: str | None
    field: str
    route: WebhookField
    business: BusinessNumber
    contacts: tuple[Contact, ...]
    messages: tuple[InboundMessage, ...]
    statuses: tuple[StatusUpdate, ...]
    errors: tuple[MetaError, ...]
    value: dict[str, Any]

    def contact_for(self, message: InboundMessage) -> Contact | None:
        """The ``contacts[]`` item that sent ``message`` (by wa_id or user id)."""
        for contact in self.contacts:
            if message.from_wa_id and message.from_wa_id in (contact.wa_id, contact.user_id):
                return contact
            if message.from_user_id and message.from_user_id == contact.user_id:
                return contact
        return self.contacts[0] if len(self.contacts) == 1 else None


@dataclass(frozen=True, slots=True)
class WebhookEnvelope:
    """A whole webhook body: every change of every entry, in the order Meta sent them."""

    changes: tuple[Change, ...]

    @property
    def messages(self) -> list[tuple[Change, InboundMessage]]:
        """Every contact message of a ``messages`` change, with the change it came in.

        Messages on other fields (``standby`` while another app owns the thread,
        ``smb_message_echoes``, ``history``) are not contact turns and are not listed.
        """
        return [
            (change, message)
            for change in self.changes
            if change.route is WebhookField.MESSAGES
            for message in change.messages
        ]

    @property
    def statuses(self) -> list[tuple[Change, StatusUpdate]]:
        """Every status update with the change it came in."""
        return [(change, status) for change in self.changes for status in change.statuses]

    @classmethod
    def parse(cls, body: bytes) -> WebhookEnvelope:
        """Parse and check a raw POST body.

        Raises :class:`InvalidWebhook` (``http_status`` 413 when over
        :data:`MAX_BODY_BYTES` or :data:`MAX_UPDATES_PER_BODY`, else 400) when the
        body is not UTF-8 JSON, not a ``whatsapp_business_account`` object, or its
        ``entry``/``changes``/``value``/``messages``/``statuses`` are of the wrong
        JSON type. Never raises anything else.
        """
        if len(body) > MAX_BODY_BYTES:
            raise InvalidWebhook(f"body over {MAX_BODY_BYTES} bytes", 413)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise InvalidWebhook(f"body is not JSON: {type(error).__name__}") from None
        if not isinstance(data, dict) or data.get("object") != WABA_OBJECT:
            raise InvalidWebhook("not a whatsapp_business_account webhook")
        entries = data.get("entry")
        if not isinstance(entries, list):
            raise InvalidWebhook("'entry' must be a list")
        changes: list[Change] = []
        updates = 0
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("changes", []), list):
                raise InvalidWebhook("each entry must be an object with a 'changes' list")
            for raw_change in entry.get("changes", []):
                change = _parse_change(_str(entry.get("id")), raw_change)
                updates += len(change.messages) + len(change.statuses)
                if updates > MAX_UPDATES_PER_BODY:
                    raise InvalidWebhook(f"more than {MAX_UPDATES_PER_BODY} updates", 413)
                changes.append(change)
        return cls(changes=tuple(changes))


def parse_status_only(body: bytes) -> tuple[StatusUpdate, ...] | None:
    """The statuses of a webhook that carries nothing else, parsed as
    :meth:`WebhookEnvelope.parse` parses them, without building its changes.

    "Nothing else": every change is of field ``messages`` and has a ``statuses`` list of
    objects and no ``messages`` or ``errors`` (a ``contacts`` list of objects, which status
    webhooks may carry, is checked and not parsed: statuses do not use it); there is at
    least one status and at most :data:`MAX_UPDATES_PER_BODY`. For any other body, valid
    or not, returns None: :meth:`WebhookEnvelope.parse` then parses it (or refuses it).
    Meta sends about three such webhooks per reply (sent, delivered, read), which makes
    this the most common body; never raises.
    """
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("object") != WABA_OBJECT:
        return None
    entries = data.get("entry")
    if not isinstance(entries, list):
        return None
    statuses: list[StatusUpdate] = []
    for entry in entries:
        changes = entry.get("changes", []) if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            return None
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if (
                not isinstance(value, dict)
                or _str(change.get("field")) != WebhookField.MESSAGES.value
                or "messages" in value
                or "errors" in value
                or not _objects(value.get("contacts", []))
            ):
                return None
            items = value.get("statuses")
            if not _objects(items):
                return None
            statuses.extend(map(StatusUpdate.from_dict, items))
            if len(statuses) > MAX_UPDATES_PER_BODY:
                return None
    return tuple(statuses) or None


def _objects(items: Any) -> bool:
    """A list of JSON objects (what parse() requires of ``contacts`` and ``statuses``)."""
    return isinstance(items, list) and all(isinstance(item, dict) for item in items)


def _list_of_objects(value: dict[str, Any], key: str) -> list[dict[str, Any]]:
    if key not in value:
        return []
    items = value[key]
    if not _objects(items):
        raise InvalidWebhook(f"'{key}' must be a list of objects")
    return items


def _parse_change(waba_id: str | None, raw: Any) -> Change:
    if not isinstance(raw, dict) or not isinstance(raw.get("value", {}), dict):
        raise InvalidWebhook("each change must be an object with an object 'value'")
    field = _str(raw.get("field")) or ""
    value: dict[str, Any] = raw.get("value", {})
    metadata = _dict(value.get("metadata"))
    return Change(
        waba_id=waba_id,
        field=field,
        route=WebhookField.of(field),
        business=BusinessNumber(
            phone_number_id=_str(metadata.get("phone_number_id")),
            display_phone_number=_str(metadata.get("display_phone_number")),
        ),
        contacts=tuple(Contact.from_dict(c) for c in _list_of_objects(value, "contacts")),
        messages=tuple(InboundMessage.from_dict(m) for m in _list_of_objects(value, "messages")),
        statuses=tuple(StatusUpdate.from_dict(s) for s in _list_of_objects(value, "statuses")),
        errors=_errors(value.get("errors")),
        value=value,
    )
