"""Reply to WhatsApp messages whose content the Cloud API does not deliver.

The WhatsApp input channel turns such a message into the intent command
``/whatsapp_unsupported{"unsupported_kind": K}`` and, when it knows it, puts the
recommended action in the message metadata at
``metadata["whatsapp"]["unsupported"]["recommended_action"]``.

``action_whatsapp_unsupported_reply`` answers with one response per message:

1. after ``N`` unsupported messages in a row (``N`` = 3, or the value of the
   environment variable ``WHATSAPP_UNSUPPORTED_HANDOFF_AFTER``):
   ``utter_unsupported_offer_human``, instead of repeating the advice again;
2. otherwise ``utter_unsupported_kind_<K>`` if the domain defines it
   (a designer's wording for one kind);
3. otherwise ``utter_unsupported_<recommended action>``, the action taken from
   the metadata if the domain has a response for it, else from
   :func:`recommended_action_for`.

Response texts may use ``{unsupported_kind}``; the action passes the kind along.

The kinds, the recommended actions and their mapping follow the help-centre
guidance on unsupported WhatsApp messages (ephemeral / view-once: turn the
setting off and resend; coexistence and unsupported companion devices: resend
from the main phone; anything else: share a screenshot or text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.env_settings import positive_int
from whatsapp_core.unsupported import RecommendedReply, UnsupportedKind, recommended_reply_for

logger = logging.getLogger(__name__)

UNSUPPORTED_INTENT = "whatsapp_unsupported"
KIND_ENTITY = "unsupported_kind"
STREAK_SLOT = "whatsapp_unsupported_streak"

HANDOFF_AFTER_ENV = "WHATSAPP_UNSUPPORTED_HANDOFF_AFTER"
DEFAULT_HANDOFF_AFTER = 3

UNKNOWN_KIND = UnsupportedKind.UNKNOWN.value
FALLBACK_ACTION = RecommendedReply.SHARE_SCREENSHOT_OR_TEXT.value

RESPONSE_PREFIX = "utter_unsupported_"
KIND_RESPONSE_PREFIX = "utter_unsupported_kind_"
OFFER_HUMAN_RESPONSE = "utter_unsupported_offer_human"

# Kinds and actions end up in response names, so they must be plain identifiers.
_NAME_PART = re.compile(r"^[a-z0-9_]{1,64}$")


def recommended_action_for(kind: str) -> str:
    """The recommended action name for an unsupported-message kind (the core's table).

    Any string is accepted; a kind the core does not know (one Meta adds tomorrow)
    gets ``share_screenshot_or_text``.
    """
    return recommended_reply_for(kind).value


def handoff_after(environ: Mapping[str, str] | None = None) -> int:
    """Return after how many unsupported messages in a row a person is offered.

    Reads ``WHATSAPP_UNSUPPORTED_HANDOFF_AFTER`` from ``environ`` (default:
    ``os.environ``). A missing, non-integer or smaller-than-1 value gives
    ``DEFAULT_HANDOFF_AFTER`` (3).
    """
    return positive_int(HANDOFF_AFTER_ENV, DEFAULT_HANDOFF_AFTER, environ)


def unsupported_streak(events: Iterable[Mapping[str, Any]]) -> int:
    """Count the unsupported messages in a row at the end of a conversation.

    Walks ``events`` (tracker events, oldest first) backwards over the user
    messages: each ``whatsapp_unsupported`` message counts one; any other user
    message, a session start or a restart ends the count. Bot, action and slot
    events in between are ignored.

    Returns:
        The number of consecutive unsupported messages (0 if the latest user
        message is something else).
    """
    streak = 0
    for event in reversed(list(events)):
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            break
        if kind != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != UNSUPPORTED_INTENT:
            break
        streak += 1
    return streak


def choose_response(
    kind: str,
    streak: int,
    responses: Mapping[str, Any],
    metadata_action: str | None = None,
    offer_human_after: int = DEFAULT_HANDOFF_AFTER,
) -> str:
    """Choose the response that answers one unsupported message.

    Args:
        kind: the unsupported-message kind (``"edited"``, ...).
        streak: unsupported messages in a row, this one included.
        responses: the domain's responses (only their names are used). When it
            is empty the action-level responses are assumed to exist.
        metadata_action: the recommended action sent by the channel, if any.
        offer_human_after: from this streak on, offer a person instead.

    Returns:
        The name of the response to send.
    """
    if streak >= offer_human_after:
        return OFFER_HUMAN_RESPONSE

    def defined(name: str) -> bool:
        return name in responses if responses else not name.startswith(KIND_RESPONSE_PREFIX)

    kind_response = f"{KIND_RESPONSE_PREFIX}{kind}"
    if defined(kind_response):
        return kind_response

    if metadata_action:
        metadata_response = f"{RESPONSE_PREFIX}{metadata_action}"
        if defined(metadata_response):
            return metadata_response
        logger.warning(
            "No response %r for the recommended action in the message metadata; "
            "using the built-in table for kind %r.",
            metadata_response,
            kind,
        )

    table_response = f"{RESPONSE_PREFIX}{recommended_action_for(kind)}"
    if defined(table_response):
        return table_response
    return f"{RESPONSE_PREFIX}{FALLBACK_ACTION}"


def _name_part(value: Any) -> str | None:
    """Return ``value`` as a lowercase identifier, or None if it is not one."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if _NAME_PART.match(value) else None


def _unsupported_metadata(latest_message: Mapping[str, Any], key: str) -> str | None:
    """Return ``metadata["whatsapp"]["unsupported"][key]`` as an identifier, or None."""
    metadata = latest_message.get("metadata") or {}
    try:
        value = metadata["whatsapp"]["unsupported"][key]
    except (KeyError, TypeError):
        return None
    return _name_part(value)


def kind_of(latest_message: Mapping[str, Any]) -> str:
    """Return the kind of an unsupported message.

    The ``unsupported_kind`` entity of the intent command; else the ``kind`` the
    channel put in the metadata; else ``"unknown"``.
    """
    for entity in latest_message.get("entities") or []:
        if entity.get("entity") == KIND_ENTITY:
            kind = _name_part(entity.get("value"))
            if kind:
                return kind
    return _unsupported_metadata(latest_message, "kind") or UNKNOWN_KIND


def metadata_action_of(latest_message: Mapping[str, Any]) -> str | None:
    """Return ``metadata["whatsapp"]["unsupported"]["recommended_action"]`` or None."""
    return _unsupported_metadata(latest_message, "recommended_action")


class ActionWhatsAppUnsupportedReply(Action):
    """Answer an unsupported WhatsApp message with the recommended action."""

    def name(self) -> str:
        return "action_whatsapp_unsupported_reply"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        latest = tracker.latest_message or {}
        kind = kind_of(latest)
        # At least this message, even if the tracker came without its events.
        streak = max(unsupported_streak(tracker.events), 1)
        response = choose_response(
            kind=kind,
            streak=streak,
            responses=(domain or {}).get("responses") or {},
            metadata_action=metadata_action_of(latest),
            offer_human_after=handoff_after(),
        )
        dispatcher.utter_message(response=response, unsupported_kind=kind)
        return [SlotSet(STREAK_SLOT, float(streak))]
