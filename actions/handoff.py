"""Hand a conversation over to a person, and keep the bot quiet until it is handed back.

``action_handoff`` runs when (see ``data/rules.yml``):

- the contact asks for a person (``request_human``, also the "Talk to a person" buttons),
  or says yes to the bot's offer of one (``utter_offer_help`` or, after unsupported
  messages, ``utter_unsupported_offer_human``);
- the bot failed to understand the contact ``N`` times (``nlu_fallback`` or
  ``out_of_scope``; ``action_whatsapp_fallback`` answers ``utter_default`` before that
  and hands over at the ``N``-th; ``N`` = 2, or ``WHATSAPP_HANDOFF_AFTER_FALLBACKS``);
- a template could not be sent (``/whatsapp_template_failed{"reason": ...}``).

It writes the conversation to the agents' queue with a summary
(:func:`whatsapp_core.handover.build_summary`) in the SQL store at
``WHATSAPP_STORE_URL`` (default ``sqlite:///whatsapp.db``, the channel's database: see
:mod:`whatsapp_core.store_location`),
tells the contact (``utter_handoff``), sets ``whatsapp_handover`` (``"waiting"``) and
``whatsapp_handover_reason``, and pauses the bot (``ConversationPaused``): Rasa still
logs the contact's messages, the bot does not answer them. When
``WHATSAPP_AGENT_WEBHOOK_URL`` is set, the summary is also posted there, in the
background with bounded retries; a failure is logged and the conversation stays queued.
When the store cannot be written the contact gets ``utter_handoff_unavailable`` and the
bot stays on. A "yes" that answers no offer of a person hands nothing over and gets no
reply.

Rasa loads only the latest session of a conversation, and a new session starts
unpaused: ``action_session_start`` does what Rasa's default does (``SessionStarted``,
the slots carried over, ``action_listen``) and pauses the new session again while
``whatsapp_handover`` is ``waiting`` or ``with_agent``.

These modules use ``rasa_sdk`` only, never ``rasa``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import requests
from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ConversationPaused,
    EventType,
    FollowupAction,
    SessionStarted,
    SlotSet,
)
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from actions.env_settings import positive_int
from whatsapp_core import handover
from whatsapp_core.handover import (
    OPEN_STATES,
    SLOT_HANDOVER,
    SLOT_HANDOVER_REASON,
    Handover,
    HandoverReason,
)
from whatsapp_core.masking import mask_phone
from whatsapp_core.retry import RetryPolicy
from whatsapp_core.schema import create_schema
from whatsapp_core.store import create_engine
from whatsapp_core.store_location import store_url_from_env
from whatsapp_core.timeline import load_timeline
from whatsapp_core.window import ConversationFacts, WindowPolicy

logger = logging.getLogger(__name__)

HANDOFF_ACTION = "action_handoff"
FALLBACK_ACTION = "action_whatsapp_fallback"
SESSION_START_ACTION = "action_session_start"

FALLBACKS_ENV = "WHATSAPP_HANDOFF_AFTER_FALLBACKS"
DEFAULT_FALLBACKS = 2
DESK_URL_ENV = "WHATSAPP_AGENT_WEBHOOK_URL"

REQUEST_INTENT = "request_human"
AFFIRM_INTENT = "affirm"
TEMPLATE_FAILED_INTENT = "whatsapp_template_failed"
TEMPLATE_FAILURE_ENTITY = "reason"
FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})
OFFERS = {
    "utter_offer_help": HandoverReason.REQUESTED,
    "utter_unsupported_offer_human": HandoverReason.UNSUPPORTED_MESSAGES,
}
"""Responses that offer a person, and the reason a yes to them gives."""

HANDOFF_RESPONSE = "utter_handoff"
UNAVAILABLE_RESPONSE = "utter_handoff_unavailable"
FALLBACK_RESPONSE = "utter_default"

DESK_RETRY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0, max_elapsed=30.0)
DESK_TIMEOUT_SECONDS = 10.0


# ------------------------------------------------------------------ the rules
def handoff_after_fallbacks(environ: Mapping[str, str] | None = None) -> int:
    """After how many misunderstood messages the bot hands over.

    Reads ``WHATSAPP_HANDOFF_AFTER_FALLBACKS`` from ``environ`` (default ``os.environ``);
    missing, not a whole number or below 1 gives :data:`DEFAULT_FALLBACKS` (2).
    """
    return positive_int(FALLBACKS_ENV, DEFAULT_FALLBACKS, environ)


def _intent(event: Mapping[str, Any]) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def fallbacks_since_handback(events: Iterable[Mapping[str, Any]]) -> int:
    """Messages the bot did not understand (``nlu_fallback``, ``out_of_scope``) since the
    conversation began, was restarted or was last handed back (``resume`` event)."""
    count = 0
    for event in events:
        kind = event.get("event")
        if kind in ("resume", "restart"):
            count = 0
        elif kind == "user" and _intent(event) in FALLBACK_INTENTS:
            count += 1
    return count


def _offer_before_latest_message(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The response the bot sent last before the contact's latest message."""
    seen_user = False
    for event in reversed(events):
        kind = event.get("event")
        if kind == "user":
            if seen_user:
                return None
            seen_user = True
        elif kind == "bot" and seen_user:
            return (event.get("metadata") or {}).get("utter_action")
    return None


def handover_reason(
    events: Sequence[Mapping[str, Any]], latest_message: Mapping[str, Any]
) -> tuple[HandoverReason, str | None] | None:
    """Why ``action_handoff`` runs now, with a detail; None for a yes to no offer.

    From the latest message's intent: ``whatsapp_template_failed`` → template failed (the
    detail is its ``reason`` entity); ``nlu_fallback``/``out_of_scope`` → not understood;
    ``affirm`` or ``request_human`` right after a response in :data:`OFFERS` → that
    offer's reason; ``request_human`` → requested; ``affirm`` otherwise → None; any other
    intent (a designer's own rule) → other, the detail naming the intent.
    """
    intent = (latest_message.get("intent") or {}).get("name")
    if intent == TEMPLATE_FAILED_INTENT:
        detail = next(
            (
                str(entity.get("value"))
                for entity in latest_message.get("entities") or []
                if entity.get("entity") == TEMPLATE_FAILURE_ENTITY
            ),
            None,
        )
        return HandoverReason.TEMPLATE_FAILED, detail
    if intent in FALLBACK_INTENTS:
        count = max(fallbacks_since_handback(events), 1)
        return HandoverReason.NOT_UNDERSTOOD, f"{count} message(s) not understood"
    offered = OFFERS.get(_offer_before_latest_message(events) or "")
    if intent in (AFFIRM_INTENT, REQUEST_INTENT) and offered is not None:
        return offered, None
    if intent == REQUEST_INTENT:
        return HandoverReason.REQUESTED, None
    if intent == AFFIRM_INTENT:
        return None
    return HandoverReason.OTHER, f"intent {intent}"


def _phone_number_id(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The business number the contact last wrote to (``metadata.whatsapp``)."""
    for event in reversed(events):
        if event.get("event") == "user":
            details = (event.get("metadata") or {}).get("whatsapp") or {}
            if details.get("phone_number_id"):
                return str(details["phone_number_id"])
    return None


# --------------------------------------------------------------------- the store
@functools.lru_cache(maxsize=4)
def store_engine(url: str) -> Engine:
    """One engine per store URL for the action server, with the channel's tables."""
    engine = create_engine(url)
    create_schema(engine)
    return engine


def queue_conversation(
    url: str,
    conversation_id: str,
    events: Sequence[Mapping[str, Any]],
    slots: Mapping[str, Any],
    reason: HandoverReason,
    reason_detail: str | None,
    policy: WindowPolicy,
) -> Handover:
    """Summarise the conversation and put it in the queue of the store at ``url``, in one
    transaction (blocking: run it in a thread)."""
    with store_engine(url).begin() as connection:
        summary = handover.build_summary(
            conversation_id,
            events,
            reason=reason,
            reason_detail=reason_detail,
            previous_facts=ConversationFacts.from_slots(slots),
            timeline=load_timeline(connection, conversation_id),
            now=time.time(),
            policy=policy,
        )
        return handover.enqueue(
            connection, summary, phone_number_id=_phone_number_id(events), now=summary.created_at
        )


# ----------------------------------------------------------------- agent desk
def post_to_desk(
    url: str,
    payload: Mapping[str, Any],
    *,
    retry: RetryPolicy = DESK_RETRY,
    timeout: float = DESK_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> bool:
    """POST ``payload`` as JSON to an external agent desk; True once it answered 2xx.

    Retries connection errors, timeouts, 408, 429 and 5xx with ``retry``'s backoff, at
    most ``retry.max_attempts`` attempts within about ``retry.max_elapsed`` seconds;
    another 4xx is not retried. Blocking: call it off the event loop. Never raises;
    a failure is logged (without the payload, which holds personal data).
    """
    rng = rng or random.Random()
    started = time.monotonic()
    conversation = mask_phone(payload.get("conversation_id", ""))
    problem = "no attempt"
    for attempt in range(1, retry.max_attempts + 1):
        try:
            response = requests.post(url, json=payload, timeout=timeout)
        except requests.RequestException as error:
            problem = type(error).__name__
        else:
            if 200 <= response.status_code < 300:
                return True
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in (408, 429):
                break
        delay = retry.delay(attempt, rng)
        last = attempt == retry.max_attempts
        if last or time.monotonic() - started + delay > retry.max_elapsed:
            break
        sleep(delay)
    logger.error(
        "Agent desk webhook failed for conversation %s (%s); it stays in the agents' queue",
        conversation,
        problem,
    )
    return False


_DESK_POSTS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="whatsapp-desk")


def notify_desk(url: str, payload: Mapping[str, Any]) -> Future:
    """Post to the desk in the background (a worker thread); the future gives the result."""
    return _DESK_POSTS.submit(post_to_desk, url, payload)


# ----------------------------------------------------------------------- actions
class ActionHandoff(Action):
    """Queue the conversation for a person, tell the contact, pause the bot."""

    def name(self) -> str:
        return HANDOFF_ACTION

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        decided = handover_reason(tracker.events, tracker.latest_message or {})
        if decided is None:
            return []
        reason, detail = decided
        try:
            queued = await asyncio.to_thread(
                queue_conversation,
                store_url_from_env(),
                tracker.sender_id,
                tracker.events,
                tracker.slots,
                reason,
                detail,
                WindowPolicy.from_env(),
            )
        except SQLAlchemyError:
            logger.exception(
                "Handover of %s failed: the agents' queue could not be written",
                mask_phone(tracker.sender_id),
            )
            dispatcher.utter_message(response=UNAVAILABLE_RESPONSE)
            return []
        dispatcher.utter_message(response=HANDOFF_RESPONSE)
        desk_url = os.environ.get(DESK_URL_ENV)
        if desk_url:
            notify_desk(desk_url, queued.summary.to_dict())
        logger.info(
            "Conversation %s handed over (%s)", mask_phone(tracker.sender_id), reason.value
        )
        return [
            SlotSet(SLOT_HANDOVER, queued.state.value),
            SlotSet(SLOT_HANDOVER_REASON, reason.value),
            ConversationPaused(),
        ]


class ActionWhatsAppFallback(Action):
    """Answer a message the bot did not understand; hand over at the N-th in a row."""

    def name(self) -> str:
        return FALLBACK_ACTION

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        if max(fallbacks_since_handback(tracker.events), 1) >= handoff_after_fallbacks():
            return [FollowupAction(HANDOFF_ACTION)]
        dispatcher.utter_message(response=FALLBACK_RESPONSE)
        return []


def carried_over_slots(
    events: Iterable[Mapping[str, Any]], carry_over: bool
) -> list[EventType]:
    """The ``slot`` events a new session starts with, as Rasa's default session start
    carries them (every one, in order, with its metadata); without ``carry_over`` only
    the handover slots, so a handed-over conversation stays handed over."""
    carried = []
    for event in events:
        if event.get("event") != "slot":
            continue
        name = event.get("name")
        if not carry_over and name not in (SLOT_HANDOVER, SLOT_HANDOVER_REASON):
            continue
        slot = SlotSet(name, event.get("value"))
        if event.get("metadata"):
            slot["metadata"] = event["metadata"]
        carried.append(slot)
    return carried


class ActionSessionStart(Action):
    """Rasa's session start, plus: a handed-over conversation stays paused."""

    def name(self) -> str:
        return SESSION_START_ACTION

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        session_config = (domain or {}).get("session_config") or {}
        carry_over = session_config.get("carry_over_slots_to_new_session", True)
        events: list[EventType] = [SessionStarted()]
        events += carried_over_slots(tracker.applied_events(), carry_over)
        if tracker.get_slot(SLOT_HANDOVER) in {state.value for state in OPEN_STATES}:
            events.append(ConversationPaused())
        events.append(ActionExecuted("action_listen"))
        return events
