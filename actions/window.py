"""The customer service window in custom actions: check it, and reply within it.

- ``action_check_whatsapp_window`` sets the window slots (``whatsapp_window_open``,
  ``whatsapp_window_expires_at``, ``whatsapp_window_kind``, ``whatsapp_entry_point``) and
  the four carry-over facts, computed from the tracker alone (WhatsApp timestamps in the
  message metadata), so it survives restarts and works across instances.
- :func:`free_form_or_template`: the one-line helper for any custom action: the free-form
  response when WhatsApp allows it, else the approved template (parameters filled, price
  covered by the balance), else nothing and the reason, with a handover to a person::

      return free_form_or_template(
          dispatcher, tracker, response="utter_follow_up_nudge", template="follow_up"
      )

- ``action_whatsapp_follow_up`` (the channel's ``whatsapp_follow_up`` intent) and
  ``action_whatsapp_delivery_failed`` (``whatsapp_delivery_failed``: 131047 → the template
  path; undeliverable / marketing limits / opt-out → a note for the agent) use it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from whatsapp_core.delivery import DeliveryFailure
from whatsapp_core.reopening import ReplyKind, TemplateResources
from whatsapp_core.templates import ContactContext
from whatsapp_core.window import (
    ConversationFacts,
    WindowPolicy,
    WindowState,
    facts_from_events,
    window_state,
)

TEMPLATE_FAILURE_SLOT = "whatsapp_template_failure"
DELIVERY_ATTENTION_SLOT = "whatsapp_delivery_attention"
LANGUAGE_SLOT = "whatsapp_language"
HANDOFF_ACTION = "action_handoff"
FOLLOW_UP_TEMPLATE = "follow_up"

_resources: TemplateResources | None = None


def resources() -> TemplateResources:
    """Catalogue, rate card and ledger of this action server (from the environment)."""
    global _resources
    if _resources is None:
        _resources = TemplateResources.from_env()
    return _resources


def window_of(
    tracker: Tracker, now: float | None = None, policy: WindowPolicy | None = None
) -> tuple[ConversationFacts, WindowState]:
    """The conversation's facts (this session's events over the carried-over slots) and
    its window at ``now``."""
    policy = policy or WindowPolicy.from_env()
    previous = ConversationFacts.from_slots(tracker.slots)
    facts = facts_from_events(tracker.events, policy, previous)
    return facts, window_state(facts, time.time() if now is None else now, policy)


def window_slots(facts: ConversationFacts, window: WindowState) -> list[EventType]:
    """SlotSet events for the window slots and the carry-over facts."""
    values = {**window.to_slots(), **facts.to_slots()}
    return [SlotSet(name, value) for name, value in values.items()]


def _last_whatsapp_metadata(events: list[Mapping[str, Any]]) -> dict[str, Any]:
    for event in reversed(events):
        metadata = event.get("metadata") if event.get("event") == "user" else None
        if isinstance(metadata, Mapping) and isinstance(metadata.get("whatsapp"), Mapping):
            return dict(metadata)
    return {}


def contact_of(tracker: Tracker) -> ContactContext:
    """Who the conversation is with, for template parameters (``$contact.name``)."""
    metadata = _last_whatsapp_metadata(tracker.events)
    return ContactContext(
        profile_name=metadata.get("whatsapp", {}).get("profile_name"),
        language=tracker.get_slot(LANGUAGE_SLOT) if LANGUAGE_SLOT in tracker.slots else None,
        slots=dict(tracker.slots),
        metadata=metadata,
    )


def free_form_or_template(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    *,
    response: str,
    template: str | None,
    force_template: bool = False,
    now: float | None = None,
    **response_kwargs: Any,
) -> list[EventType]:
    """Send ``response`` if the window is open, else the approved ``template``.

    ``force_template``: send the template even if the tracker thinks the window is open
    (Meta said 131047, so it is not). When the template cannot be sent (missing,
    not approved, a parameter without value, not enough balance), nothing is sent, the
    reason is put in the ``whatsapp_template_failure`` slot and the conversation is
    handed to a person. Returns the events to return from the action (window slots
    included).
    """
    facts, window = window_of(tracker, now)
    events = window_slots(facts, window)
    if force_template:
        window = window_state(ConversationFacts(), time.time() if now is None else now)
    decision = resources().decide(window, template, contact_of(tracker), tracker.sender_id)
    if decision.kind is ReplyKind.FREE_FORM:
        dispatcher.utter_message(response=response, **response_kwargs)
        return events
    if decision.kind is ReplyKind.TEMPLATE and decision.template is not None:
        dispatcher.utter_message(json_message={"whatsapp": decision.template.payload})
        return [*events, SlotSet(TEMPLATE_FAILURE_SLOT, None)]
    return [
        *events,
        SlotSet(TEMPLATE_FAILURE_SLOT, decision.reason),
        FollowupAction(HANDOFF_ACTION),
    ]


class ActionCheckWhatsAppWindow(Action):
    """Set the window slots from the tracker."""

    def name(self) -> str:
        return "action_check_whatsapp_window"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return window_slots(*window_of(tracker))


class ActionWhatsAppFollowUp(Action):
    """The contact went silent after a question: nudge in the window, else the template."""

    def name(self) -> str:
        return "action_whatsapp_follow_up"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return free_form_or_template(
            dispatcher, tracker, response="utter_follow_up_nudge", template=FOLLOW_UP_TEMPLATE
        )


def _error_code(tracker: Tracker) -> int | None:
    value = next(tracker.get_latest_entity_values("error_code"), None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class ActionWhatsAppDeliveryFailed(Action):
    """React to a failed delivery: reopen with the template on 131047, else note it."""

    def name(self) -> str:
        return "action_whatsapp_delivery_failed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        failure = DeliveryFailure.from_error(
            wamid=None,
            conversation_id=tracker.sender_id,
            code=_error_code(tracker),
            title=None,
            details=None,
        )
        if failure.needs_template:
            return free_form_or_template(
                dispatcher,
                tracker,
                response="utter_follow_up_nudge",
                template=FOLLOW_UP_TEMPLATE,
                force_template=True,
            )
        note = {
            "error_code": failure.code,
            "explanation": failure.explanation,
            "retry_can_help": failure.retry_can_help,
            "recommended_actions": [action.value for action in failure.actions],
        }
        return [SlotSet(DELIVERY_ATTENTION_SLOT, note if failure.needs_agent else None)]
