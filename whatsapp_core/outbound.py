"""Rasa bot responses → WhatsApp Cloud API message objects, within the API's limits.

:func:`build_messages` takes one response as Rasa hands it to an output channel and returns
the messages to send, in order, each an :class:`OutboundMessage` whose ``body`` is the Cloud
API message object without the envelope (``messaging_product``, ``recipient_type``, ``to``).
It is pure: no I/O, no clock, no randomness.

How each response key is rendered (limits from the fact sheet, section 6):

- ``text``: text messages of at most 4096 characters, split on paragraph, then line, then
  sentence, then word boundaries (mid-word only for a word longer than the limit).
  ``preview_url`` is set only on a part that contains an http(s) URL.
- ``quick_replies`` or else ``buttons`` (Rasa's precedence), each ``{title, payload}`` with an
  optional ``description``: reply buttons when they fit (≤3, titles ≤20 and unique, payloads
  ≤256 and unique, no descriptions); else an interactive list when it fits (≤10 rows, titles
  ≤24, descriptions ≤72, payloads ≤200 and unique); else a numbered text menu carrying a
  :class:`NumberedMenu` that maps the contact's reply back to the payload. Payloads are kept
  verbatim, so intent commands such as ``/choose{"x": 1}`` come back exactly as the reply id.
  The text is the interactive body (≤1024). From a longer text, the longest tail that fits
  and starts at the strongest boundary (paragraph, line, sentence, word) becomes the body,
  and everything before it is sent first as text messages (the question usually comes
  last). No text gives the body :data:`DEFAULT_CHOICE_PROMPT`. The list's button label is
  ``metadata.list_button`` (≤20) or :data:`DEFAULT_LIST_BUTTON`.
- ``image`` (URL) and ``attachment`` (URL → document; or ``{url|link|id|path, filename?,
  caption?, type?: document|image|video|audio}``): media by link, by uploaded id, or a local
  file by ``path`` (relative to ``media_upload_dir``; the sender uploads it, see
  :mod:`whatsapp_core.media_upload`). Without
  choices, a text of ≤1024 characters becomes the caption of the first image, video or
  document that has none; otherwise the text goes first as text messages. A document's
  filename defaults to the last segment of its URL path. Audio takes no caption.
- ``custom``: a whole Cloud API message object (or ``custom.whatsapp``: one object or a list,
  so a response can carry payloads for several channels), validated against the documented
  limits and sent as given; its top-level image, video, audio, document or sticker may
  name a local file with ``path`` instead of ``id``/``link``. A ``custom`` with neither
  ``whatsapp`` nor ``type`` is meant for another channel and is skipped.
- ``elements`` (Rasa carousel items ``{title, subtitle?, image_url?, buttons?}``): each item
  is rendered like a response of its own whose text is ``*title*`` and the subtitle.

Order follows Rasa's ``OutputChannel.send_response``: text/choices, custom, image,
attachment, elements. Anything that cannot be rendered raises
:class:`InvalidOutboundMessage` naming the field and the limit.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

TEXT_MAX = 4096
BODY_MAX = 1024
CAPTION_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_ROWS_MAX = 10
LIST_SECTIONS_MAX = 10
LIST_TITLE_MAX = 24
LIST_DESCRIPTION_MAX = 72
LIST_ROW_ID_MAX = 200
LIST_BUTTON_MAX = 20
CTA_DISPLAY_TEXT_MAX = 20

DEFAULT_LIST_BUTTON = "Options"
"""Label of the button that opens an interactive list (override: ``metadata.list_button``)."""
DEFAULT_CHOICE_PROMPT = "Please choose an option:"
"""Body of a buttons, list or menu message whose response has no text."""


class OutboundKind(str, Enum):
    """The shape of an outbound message.

    ``CUSTOM`` covers designer-given objects without a dedicated kind: reaction, location,
    contacts, sticker and the other interactive types (cta_url, flow, location request...).
    """

    TEXT = "text"
    INTERACTIVE_BUTTONS = "interactive_buttons"
    INTERACTIVE_LIST = "interactive_list"
    MENU = "menu"
    IMAGE = "image"
    DOCUMENT = "document"
    VIDEO = "video"
    AUDIO = "audio"
    TEMPLATE = "template"
    CUSTOM = "custom"


class InvalidOutboundMessage(ValueError):
    """A response cannot become a valid Cloud API message.

    Attributes:
        field: Path of the offending field in the response, e.g. ``buttons[2].payload``.
        problem: What is wrong, with the limit, e.g. ``longer than 256 characters (300)``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class MenuOption:
    """One line ``"<number>. <title>"`` of a numbered text menu and the payload it stands for."""

    number: int
    title: str
    payload: str


_NUMBER_REPLY = re.compile(r"^\s*(\d{1,4})\s*[.)]?\s*$")


@dataclass(frozen=True, slots=True)
class NumberedMenu:
    """The options of a numbered text menu, to read a contact's reply back as a payload."""

    options: tuple[MenuOption, ...]

    def resolve(self, reply_text: str) -> str | None:
        """Return the payload the contact's ``reply_text`` picks, or ``None``.

        Accepted: the option number alone, optionally followed by ``.`` or ``)`` and
        surrounded by spaces (``"2"``, ``" 2. "``, ``"2)"``); or an option's exact title,
        ignoring case and surrounding or repeated spaces. Anything else returns ``None``.
        """
        if not isinstance(reply_text, str):
            return None
        match = _NUMBER_REPLY.match(reply_text)
        if match:
            number = int(match.group(1))
            return next((o.payload for o in self.options if o.number == number), None)
        wanted = _fold(reply_text)
        return next((o.payload for o in self.options if _fold(o.title) == wanted), None)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to send.

    Fields:
        kind: Its shape (:class:`OutboundKind`).
        body: The Cloud API message object without ``messaging_product``,
            ``recipient_type`` and ``to``, e.g. ``{"type": "text", "text": {"body": "Hi"}}``.
        menu: For ``MENU`` messages, how to read the contact's reply; else ``None``.
    """

    kind: OutboundKind
    body: dict[str, Any]
    menu: NumberedMenu | None = None

    def to_payload(self, to: str, *, reply_to: str | None = None) -> dict[str, Any]:
        """The request body for ``POST /{phone-number-id}/messages``.

        Adds ``messaging_product: whatsapp``, ``recipient_type: individual``, ``to`` and,
        when ``reply_to`` (a wamid) is given, ``context.message_id`` to quote that message.
        Returns a new dict; ``body`` is not modified.
        """
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            **copy.deepcopy(self.body),
        }
        if reply_to:
            payload["context"] = {"message_id": reply_to}
        return payload


def build_messages(response: Mapping[str, Any]) -> list[OutboundMessage]:
    """Turn one Rasa bot response into the Cloud API messages that render it, in order.

    ``response`` holds any of ``text``, ``buttons``, ``quick_replies``, ``image``,
    ``attachment``, ``custom``, ``elements``, ``metadata`` (see the module docstring for the
    rules). Returns an empty list for a response with nothing to send on WhatsApp.

    Raises:
        InvalidOutboundMessage: a field is malformed or breaks a Cloud API limit; the
            exception names the field and the limit.
    """
    if not isinstance(response, Mapping):
        raise InvalidOutboundMessage("response", "must be an object")
    list_button = _list_button(response.get("metadata"))
    messages = _compose(
        _text(response.get("text"), "text"),
        _choices(response),
        [
            m
            for m in (_image(response.get("image")), _attachment(response.get("attachment")))
            if m is not None
        ],
        list_button,
        custom=_custom_messages(response.get("custom")),
    )
    messages += _element_messages(response.get("elements"), list_button)
    return messages


# ---------------------------------------------------------------- composition


@dataclass(frozen=True, slots=True)
class _Choice:
    title: str
    payload: str
    description: str | None


@dataclass(frozen=True, slots=True)
class _Media:
    kind: OutboundKind
    source: dict[str, str]
    caption: str | None = None
    filename: str | None = None

    @property
    def takes_caption(self) -> bool:
        return self.kind is not OutboundKind.AUDIO and self.caption is None

    def message(self, caption: str | None) -> OutboundMessage:
        media_type = self.kind.value
        obj: dict[str, Any] = dict(self.source)
        caption = caption or self.caption
        if caption:
            obj["caption"] = caption
        if self.filename:
            obj["filename"] = self.filename
        return OutboundMessage(self.kind, {"type": media_type, media_type: obj})


def _compose(
    text: str,
    choices: Sequence[_Choice],
    media: Sequence[_Media],
    list_button: str,
    *,
    custom: Sequence[OutboundMessage] = (),
) -> list[OutboundMessage]:
    captioned = None
    if text and not choices and len(text) <= CAPTION_MAX:
        captioned = next((m for m in media if m.takes_caption), None)
    messages: list[OutboundMessage] = []
    if choices:
        messages += _choice_messages(text, choices, list_button)
    elif text and captioned is None:
        messages += _text_messages(text)
    messages += custom
    messages += [m.message(text if m is captioned else None) for m in media]
    return messages


def _choice_messages(
    text: str, choices: Sequence[_Choice], list_button: str
) -> list[OutboundMessage]:
    if _fits_buttons(choices):
        head, body = _split_for_body(text)
        buttons = [{"type": "reply", "reply": {"id": c.payload, "title": c.title}} for c in choices]
        interactive = {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}}
        return head + [_interactive(OutboundKind.INTERACTIVE_BUTTONS, interactive)]
    if _fits_list(choices):
        head, body = _split_for_body(text)
        rows = [_row(c) for c in choices]
        action = {"button": list_button, "sections": [{"rows": rows}]}
        interactive = {"type": "list", "body": {"text": body}, "action": action}
        return head + [_interactive(OutboundKind.INTERACTIVE_LIST, interactive)]
    return _menu_messages(text, choices)


def _fits_buttons(choices: Sequence[_Choice]) -> bool:
    return (
        len(choices) <= BUTTONS_MAX
        and all(len(c.title) <= BUTTON_TITLE_MAX for c in choices)
        and all(len(c.payload) <= BUTTON_ID_MAX for c in choices)
        and all(c.description is None for c in choices)
        and _unique(c.title for c in choices)
        and _unique(c.payload for c in choices)
    )


def _fits_list(choices: Sequence[_Choice]) -> bool:
    return (
        len(choices) <= LIST_ROWS_MAX
        and all(len(c.title) <= LIST_TITLE_MAX for c in choices)
        and all(len(c.payload) <= LIST_ROW_ID_MAX for c in choices)
        and all(len(c.description or "") <= LIST_DESCRIPTION_MAX for c in choices)
        and _unique(c.payload for c in choices)
    )


def _row(choice: _Choice) -> dict[str, str]:
    row = {"id": choice.payload, "title": choice.title}
    if choice.description:
        row["description"] = choice.description
    return row


def _interactive(kind: OutboundKind, interactive: dict[str, Any]) -> OutboundMessage:
    return OutboundMessage(kind, {"type": "interactive", "interactive": interactive})


def _menu_messages(text: str, choices: Sequence[_Choice]) -> list[OutboundMessage]:
    options = tuple(
        MenuOption(number, " ".join(c.title.split()), c.payload)
        for number, c in enumerate(choices, start=1)
    )
    lines = [
        f"{o.number}. {o.title}" + (f" - {c.description}" if c.description else "")
        for o, c in zip(options, choices, strict=True)
    ]
    parts = _split_text(f"{text or DEFAULT_CHOICE_PROMPT}\n\n" + "\n".join(lines), TEXT_MAX)
    menu = NumberedMenu(options)
    messages = [_text_message(part) for part in parts[:-1]]
    last = _text_message(parts[-1])
    return messages + [OutboundMessage(OutboundKind.MENU, last.body, menu)]


def _split_for_body(text: str) -> tuple[list[OutboundMessage], str]:
    """(text messages to send first, interactive body ≤ BODY_MAX) for a choices message."""
    if not text:
        return [], DEFAULT_CHOICE_PROMPT
    if len(text) <= BODY_MAX:
        return [], text
    start = _tail_start(text, BODY_MAX)
    return _text_messages(text[:start]), text[start:]


# ---------------------------------------------------------------- text splitting

_URL = re.compile(r"https?://\S", re.IGNORECASE)
_BREAKS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], int]], ...] = (
    (re.compile(r"\n[^\S\n]*\n"), re.Match.start),  # paragraph
    (re.compile(r"\n"), re.Match.start),  # line
    (re.compile(r"[.!?…][\"'”’)\]]*\s"), lambda m: m.end() - 1),  # sentence
    (re.compile(r"\s"), re.Match.start),  # word
)


def _text_messages(text: str) -> list[OutboundMessage]:
    return [_text_message(part) for part in _split_text(text, TEXT_MAX)]


def _text_message(part: str) -> OutboundMessage:
    content: dict[str, Any] = {"body": part}
    if _URL.search(part):
        content["preview_url"] = True
    return OutboundMessage(OutboundKind.TEXT, {"type": "text", "text": content})


def _split_text(text: str, limit: int) -> list[str]:
    return [text[start:end] for start, end in _spans(text, limit)]


def _spans(text: str, limit: int) -> list[tuple[int, int]]:
    """Slices of ``text``, stripped at both ends, each at most ``limit`` characters."""
    spans: list[tuple[int, int]] = []
    end = len(text.rstrip())
    start = _skip_space(text, 0)
    while start < end:
        if end - start <= limit:
            spans.append((start, end))
            break
        cut = _cut(text, start, start + limit)
        spans.append((start, len(text[:cut].rstrip())))
        start = _skip_space(text, cut)
    return spans


def _cut(text: str, start: int, limit_end: int) -> int:
    """Where to end a part starting at ``start`` (a non-space) so that it ends ≤ limit_end."""
    for pattern, position in _BREAKS:
        cut = None
        for match in pattern.finditer(text, start + 1, limit_end + 1):
            cut = position(match)
        if cut is not None:
            return cut
    return limit_end  # a single word longer than the limit


def _tail_start(text: str, limit: int) -> int:
    """Start of the longest tail of ``text`` (stripped) that fits ``limit`` and begins at
    the strongest boundary available (paragraph, line, sentence, word; else mid-word)."""
    lowest = len(text) - limit
    for pattern, position in _BREAKS:
        for match in pattern.finditer(text):
            start = _skip_space(text, position(match))
            if lowest <= start < len(text):
                return start
    return lowest


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


# ---------------------------------------------------------------- Rasa response fields


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidOutboundMessage(field, f"must be a string, got {type(value).__name__}")
    return value.strip()


def _list_button(metadata: Any) -> str:
    if not isinstance(metadata, Mapping) or metadata.get("list_button") is None:
        return DEFAULT_LIST_BUTTON
    label = _text(metadata["list_button"], "metadata.list_button")
    _require_length("metadata.list_button", label, LIST_BUTTON_MAX)
    return label


def _choices(response: Mapping[str, Any]) -> list[_Choice]:
    field = "quick_replies" if response.get("quick_replies") else "buttons"
    items = response.get(field)
    if not items:
        return []
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise InvalidOutboundMessage(field, "must be a list of {title, payload} objects")
    return [_choice(item, f"{field}[{index}]") for index, item in enumerate(items)]


def _choice(item: Any, field: str) -> _Choice:
    if not isinstance(item, Mapping):
        raise InvalidOutboundMessage(field, "must be an object with title and payload")
    title = _text(item.get("title"), f"{field}.title")
    if not title:
        raise InvalidOutboundMessage(f"{field}.title", "is missing or empty")
    payload = item.get("payload")
    if payload is None and item.get("url"):
        raise InvalidOutboundMessage(
            f"{field}.payload",
            "is missing: URL buttons are not reply buttons; send a custom cta_url message",
        )
    if not isinstance(payload, str) or not payload.strip():
        raise InvalidOutboundMessage(f"{field}.payload", "must be a non-empty string")
    description = _text(item.get("description"), f"{field}.description") or None
    return _Choice(title, payload, description)


def _image(value: Any) -> _Media | None:
    if not value:
        return None
    return _Media(OutboundKind.IMAGE, {"link": _url(value, "image")})


_ATTACHMENT_KINDS = {
    "document": OutboundKind.DOCUMENT,
    "image": OutboundKind.IMAGE,
    "video": OutboundKind.VIDEO,
    "audio": OutboundKind.AUDIO,
}


def _attachment(value: Any) -> _Media | None:
    if not value:
        return None
    if isinstance(value, str):
        link = _url(value, "attachment")
        return _Media(OutboundKind.DOCUMENT, {"link": link}, filename=_filename_of(link))
    if not isinstance(value, Mapping):
        raise InvalidOutboundMessage("attachment", "must be a URL or an object")
    kind_name = value.get("type", "document")
    kind = _ATTACHMENT_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        raise InvalidOutboundMessage(
            "attachment.type", f"must be one of {sorted(_ATTACHMENT_KINDS)}, got {kind_name!r}"
        )
    link = value.get("url") or value.get("link")
    media_id = value.get("id")
    path = value.get("path")
    if [bool(link), bool(media_id), bool(path)].count(True) != 1:
        raise InvalidOutboundMessage("attachment", "needs exactly one of url/link, id or path")
    if link:
        source = {"link": _url(link, "attachment.url")}
    elif path:
        source = {"path": _local_path(path, "attachment.path")}
    else:
        source = {"id": str(media_id)}
    caption = _text(value.get("caption"), "attachment.caption") or None
    if caption and kind is OutboundKind.AUDIO:
        raise InvalidOutboundMessage("attachment.caption", "audio messages take no caption")
    _require_length("attachment.caption", caption or "", CAPTION_MAX)
    filename = None
    if kind is OutboundKind.DOCUMENT:
        filename = _text(value.get("filename"), "attachment.filename") or (
            _filename_of(link) if link else None
        )
    return _Media(kind, source, caption, filename)


def _filename_of(url: str) -> str | None:
    return PurePosixPath(unquote(urlsplit(url).path)).name or None


def _element_messages(elements: Any, list_button: str) -> list[OutboundMessage]:
    if not elements:
        return []
    if not isinstance(elements, Sequence) or isinstance(elements, str):
        raise InvalidOutboundMessage("elements", "must be a list of objects")
    messages: list[OutboundMessage] = []
    for index, element in enumerate(elements):
        field = f"elements[{index}]"
        if not isinstance(element, Mapping):
            raise InvalidOutboundMessage(field, "must be an object with a title")
        title = _text(element.get("title"), f"{field}.title")
        if not title:
            raise InvalidOutboundMessage(f"{field}.title", "is missing or empty")
        subtitle = _text(element.get("subtitle"), f"{field}.subtitle")
        text = f"*{title}*" + (f"\n{subtitle}" if subtitle else "")
        buttons = element.get("buttons") or []
        if not isinstance(buttons, Sequence) or isinstance(buttons, str):
            raise InvalidOutboundMessage(f"{field}.buttons", "must be a list of objects")
        choices = [_choice(b, f"{field}.buttons[{i}]") for i, b in enumerate(buttons)]
        image = element.get("image_url")
        media = (
            [_Media(OutboundKind.IMAGE, {"link": _url(image, f"{field}.image_url")})]
            if image
            else []
        )
        messages += _compose(text, choices, media, list_button)
    return messages


# ---------------------------------------------------------------- custom payloads


def _custom_messages(custom: Any) -> list[OutboundMessage]:
    if not custom:
        return []
    if not isinstance(custom, Mapping):
        raise InvalidOutboundMessage("custom", "must be an object")
    if "whatsapp" in custom:
        objects, field = custom["whatsapp"], "custom.whatsapp"
    elif "type" in custom:
        objects, field = custom, "custom"
    else:
        return []
    if isinstance(objects, Mapping):
        return [_custom_message(objects, field)]
    if isinstance(objects, Sequence) and not isinstance(objects, str) and objects:
        return [_custom_message(obj, f"{field}[{i}]") for i, obj in enumerate(objects)]
    raise InvalidOutboundMessage(field, "must be a message object or a non-empty list of them")


def _custom_message(obj: Any, field: str) -> OutboundMessage:
    if not isinstance(obj, Mapping):
        raise InvalidOutboundMessage(field, "must be a message object")
    if obj.get("to") is not None:
        raise InvalidOutboundMessage(f"{field}.to", "the channel sets the recipient; remove it")
    body = {
        k: copy.deepcopy(v)
        for k, v in obj.items()
        if k not in ("messaging_product", "recipient_type")
    }
    message_type = body.get("type")
    check = _CUSTOM_CHECKS.get(message_type) if isinstance(message_type, str) else None
    if check is None:
        raise InvalidOutboundMessage(
            f"{field}.type",
            f"unknown message type {message_type!r}; expected one of {sorted(_CUSTOM_CHECKS)}",
        )
    content = body.get(message_type)
    if content is None:
        raise InvalidOutboundMessage(f"{field}.{message_type}", "is missing")
    return OutboundMessage(check(content, f"{field}.{message_type}"), body)


def _check_text(content: Any, field: str) -> OutboundKind:
    _require_object(content, field)
    _require_string(content, "body", field, TEXT_MAX)
    preview = content.get("preview_url")
    if preview is not None and not isinstance(preview, bool):
        raise InvalidOutboundMessage(f"{field}.preview_url", "must be true or false")
    return OutboundKind.TEXT


def _media_check(kind: OutboundKind, *, caption: bool, filename: bool = False) -> _Check:
    def check(content: Any, field: str) -> OutboundKind:
        _check_media_object(content, field, caption=caption, filename=filename, local=True)
        return kind

    return check


def _check_media_object(
    content: Any, field: str, *, caption: bool, filename: bool, local: bool = False
) -> None:
    """``local``: a ``path`` to a local file may stand for ``id``/``link`` (top-level media
    messages only: the sender uploads it)."""
    _require_object(content, field)
    sources = ("id", "link", "path") if local else ("id", "link")
    if [bool(content.get(key)) for key in sources].count(True) != 1:
        raise InvalidOutboundMessage(field, f"needs exactly one of {' or '.join(sources)}")
    if content.get("link"):
        _url(content["link"], f"{field}.link")
    if content.get("path"):
        if not local:
            raise InvalidOutboundMessage(
                f"{field}.path", "a local file is sent only as a media message; use id or link"
            )
        _local_path(content["path"], f"{field}.path")
    if "caption" in content:
        if not caption:
            raise InvalidOutboundMessage(f"{field}.caption", "this media type takes no caption")
        _require_string(content, "caption", field, CAPTION_MAX)
    if "filename" in content:
        if not filename:
            raise InvalidOutboundMessage(f"{field}.filename", "only documents take a filename")
        _require_string(content, "filename", field, None)


def _check_reaction(content: Any, field: str) -> OutboundKind:
    _require_object(content, field)
    _require_string(content, "message_id", field, None)
    if not isinstance(content.get("emoji"), str):
        raise InvalidOutboundMessage(f"{field}.emoji", "must be a string (empty removes)")
    return OutboundKind.CUSTOM


def _check_template(content: Any, field: str) -> OutboundKind:
    _require_object(content, field)
    _require_string(content, "name", field, None)
    language = content.get("language")
    _require_object(language, f"{field}.language")
    _require_string(language, "code", f"{field}.language", None)
    components = content.get("components")
    if components is not None and (
        not isinstance(components, list) or not all(isinstance(c, Mapping) for c in components)
    ):
        raise InvalidOutboundMessage(f"{field}.components", "must be a list of objects")
    return OutboundKind.TEMPLATE


def _check_location(content: Any, field: str) -> OutboundKind:
    _require_object(content, field)
    for key, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = content.get(key)
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not -bound <= number <= bound:
            raise InvalidOutboundMessage(f"{field}.{key}", f"must be a number in ±{bound:g}")
    return OutboundKind.CUSTOM


def _check_contacts(content: Any, field: str) -> OutboundKind:
    if not isinstance(content, list) or not content:
        raise InvalidOutboundMessage(field, "must be a non-empty list of contact cards")
    for index, card in enumerate(content):
        _require_object(card, f"{field}[{index}]")
        name = card.get("name")
        _require_object(name, f"{field}[{index}].name")
        _require_string(name, "formatted_name", f"{field}[{index}].name", None)
    return OutboundKind.CUSTOM


def _check_interactive(content: Any, field: str) -> OutboundKind:
    _require_object(content, field)
    interactive_type = content.get("type")
    spec = _INTERACTIVE.get(interactive_type) if isinstance(interactive_type, str) else None
    if spec is None:
        raise InvalidOutboundMessage(
            f"{field}.type",
            f"unknown interactive type {interactive_type!r}; expected one of "
            f"{sorted(_INTERACTIVE)}",
        )
    kind, body_required, text_header_only, check_action = spec
    body = content.get("body")
    if body is not None or body_required:
        _require_object(body, f"{field}.body")
        _require_string(body, "text", f"{field}.body", BODY_MAX)
    if content.get("footer") is not None:
        _require_object(content["footer"], f"{field}.footer")
        _require_string(content["footer"], "text", f"{field}.footer", FOOTER_MAX)
    if content.get("header") is not None:
        _check_header(content["header"], f"{field}.header", text_only=text_header_only)
    if check_action is not None:
        action = content.get("action")
        _require_object(action, f"{field}.action")
        check_action(action, f"{field}.action")
    return kind


def _check_header(header: Any, field: str, *, text_only: bool) -> None:
    _require_object(header, field)
    header_type = header.get("type")
    allowed = ("text",) if text_only else ("text", "image", "video", "document")
    if header_type not in allowed:
        raise InvalidOutboundMessage(f"{field}.type", f"must be one of {list(allowed)}")
    if header_type == "text":
        _require_string(header, "text", field, HEADER_TEXT_MAX)
    else:
        media = header.get(header_type)
        _check_media_object(
            media, f"{field}.{header_type}", caption=False, filename=header_type == "document"
        )


def _check_buttons_action(action: Mapping[str, Any], field: str) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= BUTTONS_MAX:
        raise InvalidOutboundMessage(f"{field}.buttons", f"must hold 1 to {BUTTONS_MAX} buttons")
    for index, button in enumerate(buttons):
        item = f"{field}.buttons[{index}]"
        _require_object(button, item)
        if button.get("type") != "reply":
            raise InvalidOutboundMessage(f"{item}.type", "must be 'reply'")
        reply = button.get("reply")
        _require_object(reply, f"{item}.reply")
        _require_string(reply, "id", f"{item}.reply", BUTTON_ID_MAX)
        _require_string(reply, "title", f"{item}.reply", BUTTON_TITLE_MAX)
    replies = [b["reply"] for b in buttons]
    if not _unique(r["title"] for r in replies):
        raise InvalidOutboundMessage(f"{field}.buttons", "button titles must be unique")
    if not _unique(r["id"] for r in replies):
        raise InvalidOutboundMessage(f"{field}.buttons", "button ids must be unique")


def _check_list_action(action: Mapping[str, Any], field: str) -> None:
    _require_string(action, "button", field, LIST_BUTTON_MAX)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= LIST_SECTIONS_MAX:
        raise InvalidOutboundMessage(
            f"{field}.sections", f"must hold 1 to {LIST_SECTIONS_MAX} sections"
        )
    ids: list[str] = []
    for index, section in enumerate(sections):
        item = f"{field}.sections[{index}]"
        _require_object(section, item)
        if len(sections) > 1 or "title" in section:
            _require_string(section, "title", item, LIST_TITLE_MAX)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise InvalidOutboundMessage(f"{item}.rows", "must be a non-empty list")
        for row_index, row in enumerate(rows):
            row_field = f"{item}.rows[{row_index}]"
            _require_object(row, row_field)
            ids.append(_require_string(row, "id", row_field, LIST_ROW_ID_MAX))
            _require_string(row, "title", row_field, LIST_TITLE_MAX)
            if "description" in row:
                _require_string(row, "description", row_field, LIST_DESCRIPTION_MAX)
    if len(ids) > LIST_ROWS_MAX:
        raise InvalidOutboundMessage(
            f"{field}.sections", f"more than {LIST_ROWS_MAX} rows in total ({len(ids)})"
        )
    if not _unique(ids):
        raise InvalidOutboundMessage(f"{field}.sections", "row ids must be unique")


def _check_cta_url_action(action: Mapping[str, Any], field: str) -> None:
    _require_name(action, field, "cta_url")
    parameters = action.get("parameters")
    _require_object(parameters, f"{field}.parameters")
    _require_string(parameters, "display_text", f"{field}.parameters", CTA_DISPLAY_TEXT_MAX)
    _url(parameters.get("url"), f"{field}.parameters.url")


def _check_location_request_action(action: Mapping[str, Any], field: str) -> None:
    _require_name(action, field, "send_location")


def _check_flow_action(action: Mapping[str, Any], field: str) -> None:
    _require_name(action, field, "flow")
    parameters = action.get("parameters")
    _require_object(parameters, f"{field}.parameters")
    _require_string(parameters, "flow_cta", f"{field}.parameters", None)
    if not parameters.get("flow_id") and not parameters.get("flow_name"):
        raise InvalidOutboundMessage(f"{field}.parameters", "needs flow_id or flow_name")


_Check = Callable[[Any, str], OutboundKind]
_ActionCheck = Callable[[Mapping[str, Any], str], None]

# interactive type → (kind, body required, header text only, action check or None)
_INTERACTIVE: dict[str, tuple[OutboundKind, bool, bool, _ActionCheck | None]] = {
    "button": (OutboundKind.INTERACTIVE_BUTTONS, True, False, _check_buttons_action),
    "list": (OutboundKind.INTERACTIVE_LIST, True, True, _check_list_action),
    "cta_url": (OutboundKind.CUSTOM, True, False, _check_cta_url_action),
    "location_request_message": (
        OutboundKind.CUSTOM,
        True,
        True,
        _check_location_request_action,
    ),
    "flow": (OutboundKind.CUSTOM, True, False, _check_flow_action),
    # Passed through after the common body/footer/header checks.
    "address_message": (OutboundKind.CUSTOM, True, True, None),
    "catalog_message": (OutboundKind.CUSTOM, True, True, None),
    "product": (OutboundKind.CUSTOM, False, True, None),
    "product_list": (OutboundKind.CUSTOM, True, True, None),
}

_CUSTOM_CHECKS: dict[str, _Check] = {
    "text": _check_text,
    "image": _media_check(OutboundKind.IMAGE, caption=True),
    "video": _media_check(OutboundKind.VIDEO, caption=True),
    "document": _media_check(OutboundKind.DOCUMENT, caption=True, filename=True),
    "audio": _media_check(OutboundKind.AUDIO, caption=False),
    "sticker": _media_check(OutboundKind.CUSTOM, caption=False),
    "interactive": _check_interactive,
    "reaction": _check_reaction,
    "template": _check_template,
    "location": _check_location,
    "contacts": _check_contacts,
}


# ---------------------------------------------------------------- small checks


def _require_object(value: Any, field: str) -> None:
    if not isinstance(value, Mapping):
        raise InvalidOutboundMessage(field, "must be an object")


def _require_string(container: Mapping[str, Any], key: str, field: str, limit: int | None) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidOutboundMessage(f"{field}.{key}", "must be a non-empty string")
    if limit is not None:
        _require_length(f"{field}.{key}", value, limit)
    return value


def _require_length(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidOutboundMessage(field, f"longer than {limit} characters ({len(value)})")


def _require_name(action: Mapping[str, Any], field: str, name: str) -> None:
    if action.get("name") != name:
        raise InvalidOutboundMessage(f"{field}.name", f"must be {name!r}")


def _url(value: Any, field: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.netloc
        or any(ch.isspace() for ch in value)
    ):
        raise InvalidOutboundMessage(field, f"must be an http(s) URL, got {value!r}")
    return value


def _local_path(value: Any, field: str) -> str:
    """A local file's path as given; where it may be is checked when it is uploaded."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise InvalidOutboundMessage(field, f"must be a file path, got {value!r}")
    return value


def _unique(values: Iterable[str]) -> bool:
    seen = list(values)
    return len(seen) == len(set(seen))


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()
