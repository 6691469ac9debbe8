"""Building inbound message objects (``value.messages[]``) from control API requests.

``POST /_sim/inbound`` bodies name a contact (``from``, ``name``), a ``type`` and that type's
fields; this module turns them into message objects shaped like Meta's webhook samples.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.config import PhoneNumber
from simulator.errors import TITLES, ControlError, ErrorCode
from simulator.media import (
    DEFAULT_INBOUND_MIME,
    INBOUND_MEDIA_TTL_SECONDS,
    MediaItem,
    MediaKind,
    MediaStore,
    sample_bytes,
)

# error_code -> (message, details) of the inbound message's errors[] item; title from TITLES.
UNSUPPORTED_ERRORS: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: (
        "Message type unknown",
        "Message type is currently not supported.",
    ),
    ErrorCode.MEDIA_DOWNLOAD_ERROR: (
        "Media download error",
        "Media file size too big. Max file size we currently support: 100MB. Please ask the "
        "user to send a smaller file or share it another way.",
    ),
    ErrorCode.MESSAGE_UNAVAILABLE: (
        "This message is currently unavailable.",
        "The message is currently unavailable; ask the user to send it again.",
    ),
    ErrorCode.GROUP_UNSUPPORTED_TYPE: (
        "Message type is not currently supported",
        "Message type is not currently supported",
    ),
}
CAPTIONED_KINDS = (MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.DOCUMENT)
# Reply type inferred from the interactive message a reply refers to.
REPLY_TYPE_FOR = {"button": "button_reply", "list": "list_reply", "flow": "nfm_reply"}


@dataclass(frozen=True)
class InboundContext:
    """What building an inbound message needs from the simulator."""

    phone: PhoneNumber
    wa_id: str
    wamid: str
    now: float
    media: MediaStore
    download_url: Callable[[MediaItem], str]
    sent_interactive_type: Callable[[str], str | None]


@dataclass(frozen=True)
class BuiltInbound:
    """The message object, plus the media item created for it (if any)."""

    message: dict[str, Any]
    media: MediaItem | None = None


def _string(spec: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = spec.get(key)
    if value is None:
        if required:
            raise ControlError(f"'{key}' is required for type {spec.get('type', 'text')!r}")
        return None
    if not isinstance(value, str):
        raise ControlError(f"'{key}' must be a string")
    return value


def _number(spec: dict[str, Any], key: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"'{key}' must be a number")
    return float(value)


def build_inbound(spec: dict[str, Any], ctx: InboundContext) -> BuiltInbound:
    """The message object for ``spec``; raises ControlError for a malformed spec.

    ``raw`` is used verbatim. Otherwise ``from``/``id``/``timestamp``/``type`` are filled, plus
    ``context`` (``reply_to`` wamid, or ``forwarded``/``frequently_forwarded``) and
    ``referral`` when given.
    """
    raw = spec.get("raw")
    if raw is not None:
        if not isinstance(raw, dict):
            raise ControlError("'raw' must be a message object")
        return BuiltInbound(dict(raw))
    message_type = spec.get("type", "text")
    if not isinstance(message_type, str):
        raise ControlError("'type' must be a string")
    message: dict[str, Any] = {
        "from": ctx.wa_id,
        "id": ctx.wamid,
        "timestamp": str(int(ctx.now)),
        "type": message_type,
    }
    context = _context(spec, ctx)
    if context:
        message["context"] = context
    referral = spec.get("referral")
    if referral is not None:
        if not isinstance(referral, dict) or not isinstance(referral.get("source_type"), str):
            raise ControlError("'referral' must be an object with source_type")
        message["referral"] = dict(referral)
    media_item = None
    if message_type in {kind.value for kind in MediaKind}:
        media_item, message[message_type] = _media(MediaKind(message_type), spec, ctx)
    elif message_type == "text":
        message["text"] = {"body": _string(spec, "text")}
    elif message_type == "location":
        message["location"] = _location(spec)
    elif message_type == "contacts":
        contacts = spec.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            raise ControlError("'contacts' must be a non-empty list of contact objects")
        message["contacts"] = contacts
    elif message_type == "button":
        text = _string(spec, "text")
        message["button"] = {
            "payload": _string(spec, "payload", required=False) or text,
            "text": text,
        }
    elif message_type == "interactive":
        message["interactive"] = _interactive(spec, ctx)
    elif message_type == "reaction":
        reaction: dict[str, Any] = {"message_id": _string(spec, "message_id")}
        emoji = _string(spec, "emoji", required=False)
        if emoji is not None:
            reaction["emoji"] = emoji
        message["reaction"] = reaction
    elif message_type == "unsupported":
        message.update(_unsupported(spec))
    elif message_type != "request_welcome":
        sub_object = spec.get(message_type)
        if not isinstance(sub_object, dict):
            raise ControlError(
                f"type {message_type!r} needs its sub-object under {message_type!r} (or use 'raw')"
            )
        message[message_type] = sub_object
    return BuiltInbound(message, media_item)


def _context(spec: dict[str, Any], ctx: InboundContext) -> dict[str, Any]:
    reply_to = _string(spec, "reply_to", required=False)
    if reply_to is not None:
        return {"from": ctx.phone.display_phone_number, "id": reply_to}
    if spec.get("frequently_forwarded"):
        return {"forwarded": True, "frequently_forwarded": True}
    if spec.get("forwarded"):
        return {"forwarded": True}
    return {}


def _media(
    kind: MediaKind, spec: dict[str, Any], ctx: InboundContext
) -> tuple[MediaItem, dict[str, Any]]:
    mime_type = _string(spec, "mime_type", required=False) or DEFAULT_INBOUND_MIME[kind]
    encoded = _string(spec, "content_base64", required=False)
    if encoded is not None:
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ControlError("'content_base64' is not valid base64") from None
    else:
        data = sample_bytes(kind, mime_type)
    filename = _string(spec, "filename", required=False)
    if kind is MediaKind.DOCUMENT and filename is None:
        filename = "document.pdf"
    item = ctx.media.add(data, mime_type, now=ctx.now, ttl_seconds=INBOUND_MEDIA_TTL_SECONDS)
    obj: dict[str, Any] = {"mime_type": mime_type, "sha256": item.sha256_base64, "id": item.id}
    caption = _string(spec, "caption", required=False)
    if caption is not None:
        if kind not in CAPTIONED_KINDS:
            raise ControlError(f"'caption' is not possible on {kind.value}")
        obj["caption"] = caption
    if kind is MediaKind.DOCUMENT:
        obj["filename"] = filename
    if kind is MediaKind.AUDIO:
        obj["voice"] = bool(spec.get("voice", False))
    if kind is MediaKind.STICKER:
        obj["animated"] = bool(spec.get("animated", False))
    obj["url"] = ctx.download_url(item)
    return item, obj


def _location(spec: dict[str, Any]) -> dict[str, Any]:
    location: dict[str, Any] = {
        "latitude": _number(spec, "latitude"),
        "longitude": _number(spec, "longitude"),
    }
    for key in ("name", "address", "url"):
        value = _string(spec, key, required=False)
        if value is not None:
            location[key] = value
    return location


def _interactive(spec: dict[str, Any], ctx: InboundContext) -> dict[str, Any]:
    reply_type = _string(spec, "reply_type", required=False)
    if reply_type is None:
        reply_to = _string(spec, "reply_to", required=False)
        sent_type = ctx.sent_interactive_type(reply_to) if reply_to else None
        reply_type = REPLY_TYPE_FOR.get(sent_type or "", "button_reply")
    if reply_type == "nfm_reply":
        response = spec.get("response_json", {})
        if not isinstance(response, dict | str):
            raise ControlError("'response_json' must be an object or a JSON string")
        return {
            "type": "nfm_reply",
            "nfm_reply": {
                "response_json": response if isinstance(response, str) else json.dumps(response),
                "body": _string(spec, "body", required=False) or "Sent",
                "name": _string(spec, "nfm_name", required=False) or "flow",
            },
        }
    if reply_type not in ("button_reply", "list_reply"):
        raise ControlError("'reply_type' must be button_reply, list_reply or nfm_reply")
    reply: dict[str, Any] = {"id": _string(spec, "id"), "title": _string(spec, "title")}
    description = _string(spec, "description", required=False)
    if reply_type == "list_reply" and description is not None:
        reply["description"] = description
    return {"type": reply_type, reply_type: reply}


def _unsupported(spec: dict[str, Any]) -> dict[str, Any]:
    codes = sorted(int(code) for code in UNSUPPORTED_ERRORS)
    raw_code = spec.get("error_code", int(ErrorCode.UNSUPPORTED_MESSAGE_TYPE))
    if raw_code not in codes:
        raise ControlError(f"'error_code' must be one of {codes}")
    code = ErrorCode(raw_code)
    text, details = UNSUPPORTED_ERRORS[code]
    error = {
        "code": int(code),
        "title": TITLES[code],
        "message": text,
        "error_data": {"details": details},
    }
    result: dict[str, Any] = {"errors": [error]}
    unsupported_type = _string(spec, "unsupported_type", required=False)
    if unsupported_type is not None:
        result["unsupported"] = {"type": unsupported_type}
    return result
