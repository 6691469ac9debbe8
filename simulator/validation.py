"""Validation of ``POST /{phone-number-id}/messages`` bodies against Meta's documented limits.

:func:`parse_messages_request` turns a request body into either an :class:`OutboundMessage`
(a send) or a :class:`MarkRead` (mark-as-read / typing indicator), or raises
:class:`~simulator.errors.GraphError` with Meta's code (100 structural, 131008 missing,
131009 invalid value, 1320xx templates) and details naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from simulator.config import PhoneNumber
from simulator.errors import ErrorCode, GraphError, invalid, missing
from simulator.fields import (
    check_length,
    check_media_object,
    child,
    optional_bool,
    optional_object,
    optional_string,
    require_choice,
    require_http_url,
    require_item_object,
    require_list,
    require_number,
    require_object,
    require_string,
)
from simulator.media import MediaStore
from simulator.templates import RenderedTemplate, TemplateStore, render_template_send

MAX_TEXT_BODY = 4096
MAX_CAPTION = 1024
MAX_INTERACTIVE_BODY = 1024
MAX_HEADER_TEXT = 60
MAX_FOOTER_TEXT = 60
MAX_BUTTON_ID = 256
MAX_BUTTON_TITLE = 20
MAX_BUTTONS = 3
MAX_LIST_BUTTON = 20
MAX_SECTIONS = 10
MAX_ROWS = 10
MAX_ROW_ID = 200
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_SECTION_TITLE = 24
MAX_CTA_DISPLAY_TEXT = 20
MAX_FLOW_CTA = 30
MAX_CALLBACK_DATA = 512
PHONE_SEPARATORS = re.compile(r"[\s\-().]")


class MessageType(str, Enum):
    """Outbound message types the simulator accepts."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    INTERACTIVE = "interactive"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    TEMPLATE = "template"


class InteractiveType(str, Enum):
    """``interactive.type`` values the simulator accepts."""

    BUTTON = "button"
    LIST = "list"
    CTA_URL = "cta_url"
    LOCATION_REQUEST = "location_request_message"
    FLOW = "flow"
    ADDRESS = "address_message"


CAPTIONED = (MessageType.IMAGE, MessageType.VIDEO, MessageType.DOCUMENT)


@dataclass(frozen=True)
class OutboundMessage:
    """A valid send request: ``to`` as given and its normalized ``wa_id``; ``payload`` is the
    body as sent; ``rendered`` is set for templates; ``callback_data`` is echoed in statuses."""

    to: str
    wa_id: str
    type: MessageType
    payload: dict[str, Any]
    rendered: RenderedTemplate | None
    callback_data: str | None


@dataclass(frozen=True)
class MarkRead:
    """A valid mark-as-read request, optionally showing a typing indicator."""

    message_id: str
    typing: bool


@dataclass(frozen=True)
class ValidationContext:
    """What validation needs to know beyond the body itself."""

    sender: PhoneNumber
    media: MediaStore
    templates: TemplateStore
    now: float


def parse_messages_request(body: Any, ctx: ValidationContext) -> OutboundMessage | MarkRead:
    """Validate a ``/messages`` body; see the module docstring for the error contract."""
    if not isinstance(body, dict):
        raise GraphError(ErrorCode.INVALID_PARAMETER, "The request body must be a JSON object.")
    product = body.get("messaging_product")
    if product is None:
        raise GraphError(
            ErrorCode.INVALID_PARAMETER,
            "The parameter messaging_product is required.",
            message="(#100) The parameter messaging_product is required.",
        )
    if product != "whatsapp":
        raise GraphError(ErrorCode.INVALID_PARAMETER, "Param messaging_product must be 'whatsapp'.")
    if body.get("status") is not None:
        return _parse_mark_read(body)
    return _parse_send(body, ctx)


def _parse_mark_read(body: dict[str, Any]) -> MarkRead:
    if body["status"] != "read":
        raise invalid("status", "must be 'read' to mark a message as read.")
    message_id = require_string(body, "message_id", "")
    indicator = optional_object(body, "typing_indicator", "")
    if indicator is not None:
        require_choice(indicator, "type", "typing_indicator", ("text",))
    return MarkRead(message_id=message_id, typing=indicator is not None)


def _parse_send(body: dict[str, Any], ctx: ValidationContext) -> OutboundMessage:
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise invalid("recipient_type", f"only 'individual' is supported (got {recipient_type!r}).")
    to = body.get("to")
    if to is None:
        raise missing("to")
    if not isinstance(to, str):
        raise GraphError(ErrorCode.INVALID_PARAMETER, "Param to must be a string.")
    wa_id = PHONE_SEPARATORS.sub("", to).removeprefix("+")
    if not wa_id.isdigit() or not 7 <= len(wa_id) <= 15:
        raise invalid("to", f"{to!r} is not a phone number in international format.")
    if wa_id == ctx.sender.display_phone_number:
        raise GraphError(
            ErrorCode.RECIPIENT_IS_SENDER, f"to: {to!r} is the sending business number."
        )
    raw_type = body.get("type", "text")
    try:
        message_type = MessageType(raw_type)
    except ValueError:
        choices = ", ".join(t.value for t in MessageType)
        raise GraphError(
            ErrorCode.INVALID_PARAMETER, f"Param type must be one of {{{choices}}}."
        ) from None
    context = optional_object(body, "context", "")
    if context is not None:
        require_string(context, "message_id", "context")
    callback_data = optional_string(body, "biz_opaque_callback_data", "", max_len=MAX_CALLBACK_DATA)
    rendered = None
    if message_type is MessageType.CONTACTS:
        _contacts(require_list(body, "contacts", ""))
    elif message_type is MessageType.TEMPLATE:
        rendered = render_template_send(
            require_object(body, "template", ""),
            store=ctx.templates,
            media=ctx.media,
            now=ctx.now,
        )
    else:
        VALIDATORS[message_type](require_object(body, message_type.value, ""), ctx)
    return OutboundMessage(
        to=to,
        wa_id=wa_id,
        type=message_type,
        payload=body,
        rendered=rendered,
        callback_data=callback_data,
    )


# --- per-type validators ------------------------------------------------------------------


def _text(obj: dict[str, Any], ctx: ValidationContext) -> None:
    require_string(obj, "body", "text", max_len=MAX_TEXT_BODY)
    optional_bool(obj, "preview_url", "text")


def _media(kind: MessageType) -> Callable[[dict[str, Any], ValidationContext], None]:
    def validate(obj: dict[str, Any], ctx: ValidationContext) -> None:
        check_media_object(
            obj,
            kind.value,
            media=ctx.media,
            now=ctx.now,
            allow_caption=kind in CAPTIONED,
            allow_filename=kind is MessageType.DOCUMENT,
        )

    return validate


def _location(obj: dict[str, Any], ctx: ValidationContext) -> None:
    require_number(obj, "latitude", "location", low=-90, high=90)
    require_number(obj, "longitude", "location", low=-180, high=180)
    optional_string(obj, "name", "location")
    optional_string(obj, "address", "location")


def _contacts(contacts: list[Any]) -> None:
    for index in range(len(contacts)):
        path = child("contacts", index)
        contact = require_item_object(contacts, index, "contacts")
        name = require_object(contact, "name", path)
        require_string(name, "formatted_name", child(path, "name"))
        if not any(isinstance(name.get(k), str) and name[k] for k in ("first_name", "last_name")):
            raise missing(f"{child(path, 'name')}.first_name or {child(path, 'name')}.last_name")
        phones = contact.get("phones")
        if phones is not None:
            phone_list = require_list(contact, "phones", path, min_items=0)
            for phone_index in range(len(phone_list)):
                phone = require_item_object(phone_list, phone_index, child(path, "phones"))
                optional_string(phone, "phone", child(child(path, "phones"), phone_index))


def _reaction(obj: dict[str, Any], ctx: ValidationContext) -> None:
    require_string(obj, "message_id", "reaction")
    emoji = obj.get("emoji")
    if emoji is None:
        raise missing("reaction.emoji")
    if not isinstance(emoji, str):
        raise GraphError(ErrorCode.INVALID_PARAMETER, "Param reaction.emoji must be a string.")
    if emoji and (len(emoji) > 10 or any(c.isascii() and c.isalnum() for c in emoji)):
        raise invalid("reaction.emoji", f"must be a single emoji or empty (got {emoji!r}).")


def _interactive(obj: dict[str, Any], ctx: ValidationContext) -> None:
    raw_type = require_string(obj, "type", "interactive")
    try:
        interactive_type = InteractiveType(raw_type)
    except ValueError:
        choices = ", ".join(t.value for t in InteractiveType)
        raise invalid("interactive.type", f"must be one of {choices} (got {raw_type!r}).") from None
    body = require_object(obj, "body", "interactive")
    require_string(body, "text", "interactive.body", max_len=MAX_INTERACTIVE_BODY)
    footer = optional_object(obj, "footer", "interactive")
    if footer is not None:
        require_string(footer, "text", "interactive.footer", max_len=MAX_FOOTER_TEXT)
    action = require_object(obj, "action", "interactive")
    INTERACTIVE_VALIDATORS[interactive_type](obj, action, ctx)


def _header(obj: dict[str, Any], ctx: ValidationContext, *, media_allowed: bool) -> None:
    header = optional_object(obj, "header", "interactive")
    if header is None:
        return
    allowed = ("text", "image", "video", "document") if media_allowed else ("text",)
    kind = require_choice(header, "type", "interactive.header", allowed)
    if kind == "text":
        require_string(header, "text", "interactive.header", max_len=MAX_HEADER_TEXT)
        return
    check_media_object(
        require_object(header, kind, "interactive.header"),
        f"interactive.header.{kind}",
        media=ctx.media,
        now=ctx.now,
        allow_caption=False,
        allow_filename=kind == "document",
    )


def _buttons(obj: dict[str, Any], action: dict[str, Any], ctx: ValidationContext) -> None:
    _header(obj, ctx, media_allowed=True)
    path = "interactive.action.buttons"
    buttons = require_list(action, "buttons", "interactive.action", max_items=MAX_BUTTONS)
    ids: set[str] = set()
    titles: set[str] = set()
    for index in range(len(buttons)):
        button_path = child(path, index)
        button = require_item_object(buttons, index, path)
        require_choice(button, "type", button_path, ("reply",))
        reply = require_object(button, "reply", button_path)
        reply_path = child(button_path, "reply")
        button_id = require_string(reply, "id", reply_path, max_len=MAX_BUTTON_ID)
        title = require_string(reply, "title", reply_path, max_len=MAX_BUTTON_TITLE)
        if button_id in ids:
            raise invalid(child(reply_path, "id"), f"button ids must be unique ({button_id!r}).")
        if title in titles:
            raise invalid(child(reply_path, "title"), f"button titles must be unique ({title!r}).")
        ids.add(button_id)
        titles.add(title)


def _list(obj: dict[str, Any], action: dict[str, Any], ctx: ValidationContext) -> None:
    _header(obj, ctx, media_allowed=False)
    require_string(action, "button", "interactive.action", max_len=MAX_LIST_BUTTON)
    path = "interactive.action.sections"
    sections = require_list(action, "sections", "interactive.action", max_items=MAX_SECTIONS)
    row_ids: set[str] = set()
    total_rows = 0
    for index in range(len(sections)):
        section_path = child(path, index)
        section = require_item_object(sections, index, path)
        if len(sections) > 1:
            require_string(section, "title", section_path, max_len=MAX_SECTION_TITLE)
        else:
            optional_string(section, "title", section_path, max_len=MAX_SECTION_TITLE)
        rows = require_list(section, "rows", section_path)
        total_rows += len(rows)
        if total_rows > MAX_ROWS:
            raise invalid(path, f"at most {MAX_ROWS} rows in total across all sections.")
        rows_path = child(section_path, "rows")
        for row_index in range(len(rows)):
            row_path = child(rows_path, row_index)
            row = require_item_object(rows, row_index, rows_path)
            row_id = require_string(row, "id", row_path, max_len=MAX_ROW_ID)
            require_string(row, "title", row_path, max_len=MAX_ROW_TITLE)
            optional_string(row, "description", row_path, max_len=MAX_ROW_DESCRIPTION)
            if row_id in row_ids:
                raise invalid(child(row_path, "id"), f"row ids must be unique ({row_id!r}).")
            row_ids.add(row_id)


def _cta_url(obj: dict[str, Any], action: dict[str, Any], ctx: ValidationContext) -> None:
    _header(obj, ctx, media_allowed=True)
    require_choice(action, "name", "interactive.action", ("cta_url",))
    parameters = require_object(action, "parameters", "interactive.action")
    path = "interactive.action.parameters"
    require_string(parameters, "display_text", path, max_len=MAX_CTA_DISPLAY_TEXT)
    require_http_url(parameters, "url", path)


def _location_request(obj: dict[str, Any], action: dict[str, Any], ctx: ValidationContext) -> None:
    if obj.get("header") is not None:
        raise invalid("interactive.header", "is not supported for location_request_message.")
    require_choice(action, "name", "interactive.action", ("send_location",))


def _flow(obj: dict[str, Any], action: dict[str, Any], ctx: ValidationContext) -> None:
    _header(obj, ctx, media_allowed=True)
    require_choice(action, "name", "interactive.action", ("flow",))
    parameters = require_object(action, "parameters", "interactive.action")
    path = "interactive.action.parameters"
    require_string(parameters, "flow_message_version", path)
    has_id = parameters.get("flow_id") is not None
    has_name = parameters.get("flow_name") is not None
    if has_id == has_name:
        raise invalid(path, "give exactly one of flow_id or flow_name.")
    require_string(parameters, "flow_cta", path, max_len=MAX_FLOW_CTA)
    optional_string(parameters, "flow_token", path)
    if parameters.get("flow_action") is not None:
        require_choice(parameters, "flow_action", path, ("navigate", "data_exchange"))


def _address(obj: dict[str, Any], action: dict[str, Any], ctx: ValidationContext) -> None:
    require_choice(action, "name", "interactive.action", ("address_message",))
    parameters = require_object(action, "parameters", "interactive.action")
    country = require_string(parameters, "country", "interactive.action.parameters")
    check_length(country, "interactive.action.parameters.country", min_len=2, max_len=2)


VALIDATORS = {
    MessageType.TEXT: _text,
    MessageType.IMAGE: _media(MessageType.IMAGE),
    MessageType.VIDEO: _media(MessageType.VIDEO),
    MessageType.AUDIO: _media(MessageType.AUDIO),
    MessageType.DOCUMENT: _media(MessageType.DOCUMENT),
    MessageType.STICKER: _media(MessageType.STICKER),
    MessageType.LOCATION: _location,
    MessageType.REACTION: _reaction,
    MessageType.INTERACTIVE: _interactive,
}

INTERACTIVE_VALIDATORS = {
    InteractiveType.BUTTON: _buttons,
    InteractiveType.LIST: _list,
    InteractiveType.CTA_URL: _cta_url,
    InteractiveType.LOCATION_REQUEST: _location_request,
    InteractiveType.FLOW: _flow,
    InteractiveType.ADDRESS: _address,
}
