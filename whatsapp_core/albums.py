"""Albums: several photos or videos a contact sends at once become one bot turn.

WhatsApp delivers an album as separate ``image``/``video`` messages, one webhook each,
within a second or two (the caption, if any, rides on one of them). Answering each
would flood the contact with "thanks for the photo". The receiver waits
``album_window_seconds`` after the first such message and merges the ones of the same
conversation sent within that window into one turn: the text is the caption (or the
media command of the first), and ``metadata["whatsapp"]["album"]`` lists every part.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

from whatsapp_core.normalize import intent_command
from whatsapp_core.store import InboxItem

ALBUM_TYPES = frozenset({"image", "video"})


def _details(item: InboxItem) -> dict:
    return item.metadata.get("whatsapp", {})


def is_album_part(item: InboxItem) -> bool:
    """Is this message a photo or a video (a possible part of an album)?"""
    return _details(item).get("type") in ALBUM_TYPES and not _details(item).get("unsupported")


def same_album(first: InboxItem, other: InboxItem, window_seconds: float) -> bool:
    """Was ``other`` sent with ``first`` (same conversation, photo/video, within the window)?"""
    return (
        other.conversation_id == first.conversation_id
        and is_album_part(other)
        and abs(other.wa_timestamp - first.wa_timestamp) <= window_seconds
    )


def merge_album(parts: Sequence[InboxItem]) -> InboxItem:
    """One turn for the album ``parts`` (in order); a single part is returned unchanged."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    metadata = copy.deepcopy(first.metadata)
    details = metadata.setdefault("whatsapp", {})
    details["album"] = [
        {"message_id": part.message_id, "type": _details(part).get("type"),
         "media": _details(part).get("media")}
        for part in parts
    ]
    details["album_message_ids"] = [part.message_id for part in parts]
    captions = [
        (_details(part).get("media") or {}).get("caption") for part in parts
    ]
    caption = next((part.text for part, c in zip(parts, captions, strict=True) if c), None)
    types = {_details(part).get("type") for part in parts}
    text = caption or intent_command(
        "whatsapp_media", {"media_type": types.pop() if len(types) == 1 else "album"}
    )
    return replace(first, text=text, metadata=metadata)


def message_ids(item: InboxItem) -> list[str]:
    """Every inbox message a (possibly merged) turn stands for."""
    return list(_details(item).get("album_message_ids") or [item.message_id])
