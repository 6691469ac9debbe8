"""Inbound messages that carry no usable content, their kind, and the reply to give.

The help-centre article this product follows lists messages an inbox cannot show
(ephemeral, edited, oversized media, Coexistence groups/broadcasts, view-once,
messages from companion devices...) and three recommended actions. This module maps
what the Cloud API actually delivers for them to one stable vocabulary of kinds
(:class:`UnsupportedKind`) and a recommended reply for each
(:class:`RecommendedReply`). How each kind is detected, with sources:

==========================  ==============================================  ========================
Meta delivers               source                                          kind
==========================  ==============================================  ========================
error code 131052           Meta media page ("Media file size too big")     ``oversized_media``
error code 131060           Meta unsupported page (Coexistence first msg)   ``coexistence``
error code 130501 / group   Meta groups-messaging page                      ``group``
``unsupported.type`` edit   Meta unsupported page example                   ``edited``
``type: edit`` / ``revoke`` Meta edit / revoke pages (Coexistence only)     ``edited`` / ``deleted``
keep_in_chat                Meta unsupported list (disappearing "keep")     ``ephemeral``
view_once                   not documented by Meta; accepted if it appears  ``view_once``
poll_creation, poll_update  Meta unsupported list                           ``poll``
pin, group_invite, gif,     Meta unsupported list                           same name
link_preview, reaction
product, order              Meta unsupported list                           ``product``
button, list, interactive,  Meta unsupported list; an ``interactive`` whose  ``interactive``
hsm                         sub-type we do not model
image, location,            Meta unsupported list (content WhatsApp could   ``media_placeholder``
media_placeholder           not provide)
errors, no sub-object,      legacy ``type: unknown`` (2022), pywa fixtures,  ``unknown``
legacy unknown, new type    any type Meta adds later
==========================  ==============================================  ========================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from whatsapp_core.webhook import InboundMessage, MetaError


class UnsupportedKind(str, Enum):
    """What kind of content could not be delivered (stable: stories match on it)."""

    EDITED = "edited"
    DELETED = "deleted"
    EPHEMERAL = "ephemeral"
    VIEW_ONCE = "view_once"
    OVERSIZED_MEDIA = "oversized_media"
    COEXISTENCE = "coexistence"
    GROUP = "group"
    POLL = "poll"
    PIN = "pin"
    GROUP_INVITE = "group_invite"
    GIF = "gif"
    LINK_PREVIEW = "link_preview"
    PRODUCT = "product"
    INTERACTIVE = "interactive"
    REACTION = "reaction"
    MEDIA_PLACEHOLDER = "media_placeholder"
    UNKNOWN = "unknown"


class RecommendedReply(str, Enum):
    """What to ask the contact to do; the bot has one response per member."""

    DISABLE_EPHEMERAL_AND_RESEND = "disable_ephemeral_and_resend"
    RESEND_FROM_PRIMARY_DEVICE = "resend_from_primary_device"
    SEND_SMALLER_FILE_OR_LINK = "send_smaller_file_or_link"
    RESEND_NEW_WORDING = "resend_new_wording"
    SHARE_SCREENSHOT_OR_TEXT = "share_screenshot_or_text"


_REPLY_BY_KIND: dict[UnsupportedKind, RecommendedReply] = {
    UnsupportedKind.EPHEMERAL: RecommendedReply.DISABLE_EPHEMERAL_AND_RESEND,
    UnsupportedKind.VIEW_ONCE: RecommendedReply.DISABLE_EPHEMERAL_AND_RESEND,
    UnsupportedKind.COEXISTENCE: RecommendedReply.RESEND_FROM_PRIMARY_DEVICE,
    UnsupportedKind.GROUP: RecommendedReply.RESEND_FROM_PRIMARY_DEVICE,
    UnsupportedKind.OVERSIZED_MEDIA: RecommendedReply.SEND_SMALLER_FILE_OR_LINK,
    UnsupportedKind.EDITED: RecommendedReply.RESEND_NEW_WORDING,
}

_KIND_BY_CODE: dict[int, UnsupportedKind] = {
    131052: UnsupportedKind.OVERSIZED_MEDIA,
    131060: UnsupportedKind.COEXISTENCE,
    130501: UnsupportedKind.GROUP,
}

_KIND_BY_UNSUPPORTED_TYPE: dict[str, UnsupportedKind] = {
    "edit": UnsupportedKind.EDITED,
    "revoke": UnsupportedKind.DELETED,
    "keep_in_chat": UnsupportedKind.EPHEMERAL,
    "ephemeral": UnsupportedKind.EPHEMERAL,
    "view_once": UnsupportedKind.VIEW_ONCE,
    "poll_creation": UnsupportedKind.POLL,
    "poll_update": UnsupportedKind.POLL,
    "pin": UnsupportedKind.PIN,
    "group_invite": UnsupportedKind.GROUP_INVITE,
    "gif": UnsupportedKind.GIF,
    "link_preview": UnsupportedKind.LINK_PREVIEW,
    "product": UnsupportedKind.PRODUCT,
    "order": UnsupportedKind.PRODUCT,
    "button": UnsupportedKind.INTERACTIVE,
    "list": UnsupportedKind.INTERACTIVE,
    "interactive": UnsupportedKind.INTERACTIVE,
    "hsm": UnsupportedKind.INTERACTIVE,
    "reaction": UnsupportedKind.REACTION,
    "image": UnsupportedKind.MEDIA_PLACEHOLDER,
    "location": UnsupportedKind.MEDIA_PLACEHOLDER,
    "media_placeholder": UnsupportedKind.MEDIA_PLACEHOLDER,
}

SUPPORTED_TYPES = frozenset(
    {
        "text", "image", "video", "audio", "document", "sticker", "location", "contacts",
        "button", "interactive", "order", "reaction", "request_welcome", "system",
    }
)
"""Message types delivered with content the bot can act on."""

SUPPORTED_INTERACTIVE_TYPES = frozenset({"button_reply", "list_reply", "nfm_reply"})
_TYPES_WITHOUT_CONTENT = frozenset({"request_welcome"})


def recommended_reply_for(kind: UnsupportedKind | str) -> RecommendedReply:
    """The reply for ``kind``; unknown kind names get ``share_screenshot_or_text``."""
    try:
        return _REPLY_BY_KIND.get(UnsupportedKind(kind), RecommendedReply.SHARE_SCREENSHOT_OR_TEXT)
    except ValueError:
        return RecommendedReply.SHARE_SCREENSHOT_OR_TEXT


@dataclass(frozen=True, slots=True)
class UnsupportedMessage:
    """Why a message cannot be shown, what to ask the contact, and what arrived."""

    kind: UnsupportedKind
    recommended_reply: RecommendedReply
    meta_type: str
    error: MetaError | None
    raw: dict[str, Any]

    def to_metadata(self) -> dict[str, Any]:
        """The ``metadata["whatsapp"]["unsupported"]`` dict agents and actions read."""
        return {
            "kind": self.kind.value,
            "recommended_action": self.recommended_reply.value,
            "meta_type": self.meta_type,
            "error_code": self.error.code if self.error else None,
            "error_title": self.error.title if self.error else None,
            "error_details": self.error.details if self.error else None,
            "raw": self.raw,
        }


def _unsupported(
    kind: UnsupportedKind, message: InboundMessage, meta_type: str
) -> UnsupportedMessage:
    return UnsupportedMessage(
        kind=kind,
        recommended_reply=recommended_reply_for(kind),
        meta_type=meta_type,
        error=message.errors[0] if message.errors else None,
        raw=message.raw,
    )


def detect_unsupported(message: InboundMessage) -> UnsupportedMessage | None:
    """Return why ``message`` carries no usable content, or None when it does.

    Order of the rules: a known Meta error code decides first (131052, 131060,
    130501); then Coexistence ``edit``/``revoke``; then ``unsupported``/``unknown``
    messages by their ``unsupported.type``; then Groups API messages (``group_id``);
    then a supported type whose sub-object is missing, an ``interactive`` of a
    sub-type we do not model, or a type we do not know, all ``unknown``/``interactive``.
    """
    for error in message.errors:
        if error.code in _KIND_BY_CODE:
            return _unsupported(_KIND_BY_CODE[error.code], message, message.type)
    if message.type in ("edit", "revoke"):
        return _unsupported(_KIND_BY_UNSUPPORTED_TYPE[message.type], message, message.type)
    if message.type in ("unsupported", "unknown"):
        sub_type = str(message.content.get("type") or "")
        kind = _KIND_BY_UNSUPPORTED_TYPE.get(sub_type, UnsupportedKind.UNKNOWN)
        return _unsupported(kind, message, sub_type or message.type)
    if message.group_id:
        return _unsupported(UnsupportedKind.GROUP, message, message.type)
    if message.type not in SUPPORTED_TYPES:
        return _unsupported(UnsupportedKind.UNKNOWN, message, message.type)
    if not message.has_content and message.type not in _TYPES_WITHOUT_CONTENT:
        return _unsupported(UnsupportedKind.UNKNOWN, message, message.type)
    if message.type == "interactive":
        sub_type = str(message.content.get("type") or "")
        if sub_type not in SUPPORTED_INTERACTIVE_TYPES or not isinstance(
            message.content.get(sub_type), dict
        ):
            return _unsupported(UnsupportedKind.INTERACTIVE, message, f"interactive.{sub_type}")
    return None
