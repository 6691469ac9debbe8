"""Turn one inbound WhatsApp message into what a Rasa bot receives: text + metadata.

The contract (what bot designers write stories against):

- ``text`` messages → the body. Typed text never becomes an intent command: leading
  ``/`` characters are removed, so only this channel can issue ``/intent`` commands.
- template quick-reply ``button``, ``interactive.button_reply`` and
  ``interactive.list_reply`` → the payload/id when it starts with ``/`` (a Rasa intent
  command the bot itself put on the button), else the visible title/text.
- media (``image``, ``video``, ``audio``, ``document``, ``sticker``) → the caption when
  there is one, else ``/whatsapp_media{"media_type": "<type>"}``.
- ``location`` → ``/whatsapp_location{"latitude": .., "longitude": .., "location_name": ..}``;
  ``contacts`` → ``/whatsapp_contacts``; ``order`` → ``/whatsapp_order``;
  ``reaction`` → ``/whatsapp_reaction{"emoji": ".."}`` (``""`` = removal);
  ``interactive.nfm_reply`` → ``/whatsapp_flow_reply{"flow_name": ".."}``;
  ``request_welcome`` → ``/whatsapp_welcome``;
  ``system`` → ``/whatsapp_system{"system_type": ".."}``.
- anything without usable content → ``/whatsapp_unsupported{"unsupported_kind": ".."}``
  (see :mod:`whatsapp_core.unsupported`).

``metadata["whatsapp"]`` carries the message id, WhatsApp's timestamp, type, the
business number, the contact, context, referral (with ``entry_point``), media, the
Flow response, the unsupported details and the raw message JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from whatsapp_core.unsupported import UnsupportedMessage, detect_unsupported
from whatsapp_core.webhook import BusinessNumber, Contact, InboundMessage, valid_unicode

MAX_TEXT_CHARS = 4096
"""WhatsApp's own limit for a text body; longer texts (never sent by WhatsApp) are cut
so one hostile body cannot stall NLU for every contact."""

MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
ENTRY_POINT_SOURCES = frozenset({"ad", "post"})


class UnattributableMessage(ValueError):
    """The message names no contact (no ``from``, no user id, no matching contact)."""


@dataclass(frozen=True, slots=True)
class NormalizedMessage:
    """One contact message, ready to become a Rasa ``UserMessage``.

    ``sender_id`` is the conversation id (the contact's ``wa_id``, or the
    business-scoped ``user_id`` when Meta sends no ``wa_id``); ``recipient`` is the
    value to put in ``to`` when replying; ``timestamp`` is WhatsApp's send time
    (unix seconds) or the receive time when Meta's value was unusable.
    """

    sender_id: str
    recipient: str
    message_id: str
    timestamp: int
    phone_number_id: str | None
    text: str
    metadata: dict[str, Any]
    unsupported: UnsupportedMessage | None


def intent_command(intent: str, entities: dict[str, Any] | None = None) -> str:
    """``/intent{"entity": value}`` in the form Rasa's intent-command parser accepts."""
    if not entities:
        return f"/{intent}"
    return valid_unicode(
        f"/{intent}{json.dumps(entities, ensure_ascii=False, separators=(',', ':'))}"
    )


def _valid_id(value: str | None) -> str | None:
    """An id safe to store (ids Meta sends are ASCII; anything else is cleaned)."""
    return valid_unicode(value)[:255] if value else None


def _typed_text(value: Any) -> str:
    """Contact-typed text, with leading ``/`` removed so it cannot be an intent command."""
    return valid_unicode(str(value or "")).strip().lstrip("/").strip()


def _choice(payload: Any, title: Any) -> str:
    payload_text = valid_unicode(str(payload or "")).strip()
    if payload_text.startswith("/"):
        return payload_text
    return _typed_text(title) or _typed_text(payload_text)


def _media(message: InboundMessage) -> dict[str, Any]:
    content = message.content
    return {
        "id": content.get("id"),
        "mime_type": content.get("mime_type"),
        "sha256": content.get("sha256"),
        "caption": content.get("caption"),
        "filename": content.get("filename"),
        "voice": content.get("voice"),
        "animated": content.get("animated"),
        "url": content.get("url"),
    }


def _flow_response(nfm_reply: dict[str, Any]) -> Any:
    raw = nfm_reply.get("response_json")
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def _content_text(message: InboundMessage, details: dict[str, Any]) -> str:
    """The Rasa text for a message with usable content (``detect_unsupported`` said None)."""
    content = message.content
    kind = message.type
    if kind == "text":
        return _typed_text(content.get("body"))
    if kind == "button":
        return _choice(content.get("payload"), content.get("text"))
    if kind == "interactive":
        sub_type = content.get("type")
        reply = content.get(sub_type, {})
        if sub_type in ("button_reply", "list_reply"):
            return _choice(reply.get("id"), reply.get("title"))
        details["flow_response"] = _flow_response(reply)
        return intent_command("whatsapp_flow_reply", {"flow_name": str(reply.get("name") or "")})
    if kind in MEDIA_TYPES:
        details["media"] = _media(message)
        caption = _typed_text(content.get("caption"))
        return caption or intent_command("whatsapp_media", {"media_type": kind})
    if kind == "location":
        entities = {"latitude": content.get("latitude"), "longitude": content.get("longitude")}
        if content.get("name"):
            entities["location_name"] = str(content["name"])
        details["location"] = content
        return intent_command("whatsapp_location", entities)
    if kind == "contacts":
        details["contacts"] = message.raw.get("contacts")
        return intent_command("whatsapp_contacts")
    if kind == "order":
        details["order"] = content
        return intent_command("whatsapp_order")
    if kind == "reaction":
        details["reaction"] = {"message_id": content.get("message_id")}
        return intent_command("whatsapp_reaction", {"emoji": str(content.get("emoji") or "")})
    if kind == "request_welcome":
        return intent_command("whatsapp_welcome")
    # system
    return intent_command("whatsapp_system", {"system_type": str(content.get("type") or "")})


def normalize(
    message: InboundMessage,
    contact: Contact | None,
    business: BusinessNumber,
    *,
    received_at: int,
) -> NormalizedMessage:
    """Build the Rasa view of ``message``.

    ``contact`` is the ``contacts[]`` item of the sender (None when Meta sent none,
    as for system messages); ``received_at`` replaces an unusable WhatsApp timestamp.
    A message without an id gets a stable synthetic one (``nowamid.<sha256 of its
    JSON>``) so re-deliveries still dedupe. Raises :class:`UnattributableMessage`
    when no contact id can be found.
    """
    wa_id = _valid_id(message.from_wa_id or (contact.wa_id if contact else None))
    user_id = _valid_id(message.from_user_id or (contact.user_id if contact else None))
    sender_id = wa_id or user_id
    if not sender_id:
        raise UnattributableMessage("message names no contact (no from, wa_id or user_id)")
    message_id = _valid_id(message.id) or _synthetic_id(message.raw)
    timestamp = message.timestamp if message.timestamp is not None else received_at

    details: dict[str, Any] = {
        "message_id": message_id,
        "timestamp": timestamp,
        "timestamp_from_whatsapp": message.timestamp is not None,
        "type": message.type,
        "phone_number_id": business.phone_number_id,
        "display_phone_number": business.display_phone_number,
        "wa_id": wa_id,
        "user_id": user_id,
        "profile_name": contact.profile_name if contact else None,
        "context": _context(message.context),
        "referral": _referral(message.referral),
        "group_id": message.group_id,
        "raw": message.raw,
    }
    unsupported = detect_unsupported(message)
    if unsupported is not None:
        details["unsupported"] = unsupported.to_metadata()
        if message.type == "edit":
            details["edit"] = message.content
        text = intent_command("whatsapp_unsupported", {"unsupported_kind": unsupported.kind.value})
    else:
        text = _content_text(message, details)
        if len(text) > MAX_TEXT_CHARS:
            text = text[:MAX_TEXT_CHARS]
            details["truncated"] = True
        if not text:
            # An empty text body or title: nothing to read, but never dropped.
            text = intent_command("whatsapp_unsupported", {"unsupported_kind": "unknown"})
    return NormalizedMessage(
        sender_id=sender_id,
        recipient=sender_id,
        message_id=message_id,
        timestamp=timestamp,
        phone_number_id=business.phone_number_id,
        text=text,
        metadata={"whatsapp": details},
        unsupported=unsupported,
    )


def _context(context: dict[str, Any]) -> dict[str, Any] | None:
    if not context:
        return None
    return {
        "reply_to": context.get("id"),
        "reply_to_from": context.get("from"),
        "forwarded": bool(context.get("forwarded")),
        "frequently_forwarded": bool(context.get("frequently_forwarded")),
        "referred_product": context.get("referred_product"),
    }


def _referral(referral: dict[str, Any]) -> dict[str, Any] | None:
    if not referral:
        return None
    source_type = referral.get("source_type")
    if not isinstance(source_type, str):
        source_type = None
    return {
        "source_type": source_type,
        "source_id": referral.get("source_id"),
        "source_url": referral.get("source_url"),
        "headline": referral.get("headline"),
        "body": referral.get("body"),
        "ctwa_clid": referral.get("ctwa_clid"),
        "entry_point": source_type if source_type in ENTRY_POINT_SOURCES else None,
    }


def _synthetic_id(raw: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    return f"nowamid.{digest[:40]}"
