"""The customer service window and the free entry point, as pure functions of a few facts.

Meta's rules (fact sheet ``shared/reference/whatsapp-cloud-api.md`` section 4, and the
help-centre article in ``shared/seed``):

- **Customer service window.** A 24-hour timer that starts when the contact messages the
  business and restarts on every further contact message. While it runs the business may
  send any message (free-form "service" messages); outside it only approved templates
  (free-form then fails with 131047). Open iff ``now < last_inbound_at + 24 h``: at
  23:59:59 it is open, at exactly 24:00:00 it is closed.
- **Free entry point.** A contact who messages from a Click-to-WhatsApp ad or a Facebook
  Page call-to-action button (a ``referral`` with ``source_type`` ``ad`` or ``post``), and
  whom the business answers **within 24 hours**, gets a 72-hour free entry point window from
  that answer: every message in it, templates included, is free (``pricing.type:
  free_entry_point``). Miss the 24-hour answer and there is no free window. Free-form
  messages still need the separate 24-hour service window, so :attr:`WindowState.open`
  follows the service window only, even inside a free entry point.
- **Which referral counts.** Meta opens a free entry point conversation when the contact
  arrives from the ad or button while no conversation is open (conversation-based pricing
  page). Here: a referral message is an entry point when neither a service window nor a
  free entry point window was open when it arrived. A returning contact who taps the ad
  again mid-conversation does not start a new entry point. Any contact message that
  arrives while no window is open starts a new conversation; without a referral it clears
  the previous entry point.

Meta changes these durations (and the 2026 pricing changes may change what is free): every
duration lives in :class:`WindowPolicy`, which :meth:`WindowPolicy.from_env` reads from
``WHATSAPP_SERVICE_WINDOW_HOURS``, ``WHATSAPP_FREE_ENTRY_POINT_HOURS`` and
``WHATSAPP_ENTRY_POINT_REPLY_HOURS``.

Times are unix seconds. Contact-message times are WhatsApp's timestamps (never Rasa's
receive time); a WhatsApp timestamp later than ``now`` (clock skew between Meta and this
server) is treated as ``now``, so a window never reaches past ``now + 24 h``. The business's
answer time is the Rasa timestamp of the first bot utterance after the entry message (the
answer's delivery, which Meta uses, follows within seconds).

Facts come from Rasa tracker events (:func:`facts_from_events`). The action server only sees
the current session, so what earlier sessions established is carried in four slots
(:meth:`ConversationFacts.to_slots` / :meth:`ConversationFacts.from_slots`) and passed back as
``previous``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any

HOUR = 3600
ENTRY_POINT_SOURCES = frozenset({"ad", "post"})
EXTERNAL_PREFIX = "EXTERNAL: "
"""Text of the user events Rasa adds for ``trigger_intent`` and reminders (never the contact)."""

SLOT_LAST_INBOUND_AT = "whatsapp_last_inbound_at"
SLOT_ENTRY_POINT = "whatsapp_entry_point"
SLOT_ENTRY_POINT_AT = "whatsapp_entry_point_at"
SLOT_FIRST_REPLY_AT = "whatsapp_first_reply_at"


def _is_entry_point(value: Any) -> bool:
    """Is ``value`` ``"ad"`` or ``"post"`` (and not some other JSON value)?"""
    return isinstance(value, str) and value in ENTRY_POINT_SOURCES


def _hours(environ: Mapping[str, str], name: str, default_seconds: int) -> int:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default_seconds
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of hours") from None
    if not math.isfinite(hours) or hours <= 0:
        raise ValueError(f"{name}={raw!r} must be a positive number of hours")
    return round(hours * HOUR)


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """Durations (seconds) of Meta's windows; Meta changes them, so they are settings.

    ``service_seconds``: the customer service window after each contact message (24 h).
    ``free_entry_point_seconds``: the free entry point window after the business's answer
    (72 h). ``entry_point_reply_seconds``: how soon the business must answer an ad/Page
    entry message for the free entry point to open (24 h).
    """

    service_seconds: int = 24 * HOUR
    free_entry_point_seconds: int = 72 * HOUR
    entry_point_reply_seconds: int = 24 * HOUR

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WindowPolicy:
        """Read ``WHATSAPP_SERVICE_WINDOW_HOURS``, ``WHATSAPP_FREE_ENTRY_POINT_HOURS`` and
        ``WHATSAPP_ENTRY_POINT_REPLY_HOURS`` (hours, fractions allowed) from ``environ``
        (default ``os.environ``); unset or empty keeps Meta's current values. Raises
        ValueError naming the variable for a value that is not a positive number.
        """
        environ = os.environ if environ is None else environ
        default = cls()
        return cls(
            service_seconds=_hours(
                environ, "WHATSAPP_SERVICE_WINDOW_HOURS", default.service_seconds
            ),
            free_entry_point_seconds=_hours(
                environ, "WHATSAPP_FREE_ENTRY_POINT_HOURS", default.free_entry_point_seconds
            ),
            entry_point_reply_seconds=_hours(
                environ, "WHATSAPP_ENTRY_POINT_REPLY_HOURS", default.entry_point_reply_seconds
            ),
        )


class WindowKind(str, Enum):
    """Which window the conversation is in now.

    ``FREE_ENTRY_POINT`` while a free entry point window lasts (it may outlast the service
    window), else ``SERVICE`` while the service window is open, else ``NONE``.
    """

    SERVICE = "service"
    FREE_ENTRY_POINT = "free_entry_point"
    NONE = "none"


def _seconds(value: Any) -> int | None:
    """Unix seconds from an int, float or digit string (slot values, metadata); else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return math.floor(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return _seconds(float(text)) if text else None
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """What the window rules need to know about one conversation.

    ``last_inbound_at``: WhatsApp timestamp of the contact's last real message.
    ``entry_point``: ``"ad"`` or ``"post"`` when the current conversation started from a
    Click-to-WhatsApp ad or a Facebook Page button, else None. ``entry_point_at``: WhatsApp
    timestamp of the message that carried that referral. ``first_reply_after_entry_at``:
    when the business first answered after that message (None: not answered yet).
    """

    last_inbound_at: int | None = None
    entry_point: str | None = None
    entry_point_at: int | None = None
    first_reply_after_entry_at: int | None = None

    def to_slots(self) -> dict[str, Any]:
        """The four carry-over slots (``whatsapp_last_inbound_at``, ``whatsapp_entry_point``,
        ``whatsapp_entry_point_at``, ``whatsapp_first_reply_at``)."""
        return {
            SLOT_LAST_INBOUND_AT: self.last_inbound_at,
            SLOT_ENTRY_POINT: self.entry_point,
            SLOT_ENTRY_POINT_AT: self.entry_point_at,
            SLOT_FIRST_REPLY_AT: self.first_reply_after_entry_at,
        }

    @classmethod
    def from_slots(cls, slots: Mapping[str, Any]) -> ConversationFacts:
        """Read the carry-over slots back; missing or malformed values become None.

        Float and text slot values are accepted (Rasa float slots store floats). An entry
        point other than ``ad``/``post``, or one without its time, is dropped with its times.
        """
        entry_point = slots.get(SLOT_ENTRY_POINT)
        entry_point_at = _seconds(slots.get(SLOT_ENTRY_POINT_AT))
        if not _is_entry_point(entry_point) or entry_point_at is None:
            return cls(last_inbound_at=_seconds(slots.get(SLOT_LAST_INBOUND_AT)))
        return cls(
            last_inbound_at=_seconds(slots.get(SLOT_LAST_INBOUND_AT)),
            entry_point=entry_point,
            entry_point_at=entry_point_at,
            first_reply_after_entry_at=_seconds(slots.get(SLOT_FIRST_REPLY_AT)),
        )


def _utc_iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class WindowState:
    """The windows of a conversation at one instant.

    ``open``: free-form messages are allowed (the 24-hour service window is open).
    ``expires_at``: when free-form stops being allowed (None when closed); ``seconds_left``
    until then (0 when closed). ``free_entry_point_expires_at``: end of the free entry point
    window while it lasts, else None. ``entry_point``: ``"ad"``/``"post"`` when the current
    conversation started from one (None when no window is open).
    """

    open: bool
    kind: WindowKind
    expires_at: int | None
    free_entry_point_expires_at: int | None
    entry_point: str | None
    seconds_left: int

    def to_slots(self) -> dict[str, Any]:
        """Slots for the bot: ``whatsapp_window_open`` (bool), ``whatsapp_window_expires_at``
        (ISO-8601 UTC such as ``"2026-11-25T10:00:00Z"``, or None), ``whatsapp_window_kind``
        (``"service"``, ``"free_entry_point"`` or None) and ``whatsapp_entry_point``
        (``"ad"``, ``"post"`` or None)."""
        return {
            "whatsapp_window_open": self.open,
            "whatsapp_window_expires_at": (
                _utc_iso(self.expires_at) if self.expires_at is not None else None
            ),
            "whatsapp_window_kind": None if self.kind is WindowKind.NONE else self.kind.value,
            "whatsapp_entry_point": self.entry_point,
        }


def _free_entry_point_end(facts: ConversationFacts, now: int, policy: WindowPolicy) -> int | None:
    """End of the free entry point window the facts open (expired or not), or None."""
    if (
        facts.entry_point not in ENTRY_POINT_SOURCES
        or facts.entry_point_at is None
        or facts.first_reply_after_entry_at is None
    ):
        return None
    entry_at = min(facts.entry_point_at, now)
    reply_at = min(max(facts.first_reply_after_entry_at, entry_at), now)
    if reply_at - entry_at >= policy.entry_point_reply_seconds:
        return None
    return reply_at + policy.free_entry_point_seconds


def window_state(
    facts: ConversationFacts, now: float, policy: WindowPolicy = WindowPolicy()
) -> WindowState:
    """The windows at ``now`` (unix seconds) given ``facts``; see the module rules."""
    now_s = math.floor(now)
    service_end = None
    if facts.last_inbound_at is not None:
        end = min(facts.last_inbound_at, now_s) + policy.service_seconds
        service_end = end if now_s < end else None
    free_end = _free_entry_point_end(facts, now_s, policy)
    if free_end is not None and now_s >= free_end:
        free_end = None
    if free_end is not None:
        kind = WindowKind.FREE_ENTRY_POINT
    elif service_end is not None:
        kind = WindowKind.SERVICE
    else:
        kind = WindowKind.NONE
    return WindowState(
        open=service_end is not None,
        kind=kind,
        expires_at=service_end,
        free_entry_point_expires_at=free_end,
        entry_point=facts.entry_point if kind is not WindowKind.NONE else None,
        seconds_left=service_end - now_s if service_end is not None else 0,
    )


def _window_open_at(facts: ConversationFacts, at: int, policy: WindowPolicy) -> bool:
    """Was a service or free entry point window open at ``at``, according to ``facts``?

    Used to decide whether a contact message starts a new conversation; a message at or
    before the last known one (a replayed event) always finds a window open.
    """
    if facts.last_inbound_at is not None and at < facts.last_inbound_at + policy.service_seconds:
        return True
    free_end = _free_entry_point_end(facts, at, policy)
    return free_end is not None and at < free_end


def merge_facts(
    previous: ConversationFacts | None,
    current: ConversationFacts,
    policy: WindowPolicy = WindowPolicy(),
) -> ConversationFacts:
    """Combine what earlier sessions established (``previous``) with a later ``current``.

    The newest ``last_inbound_at`` wins. The entry point of the conversation start is kept:
    ``current``'s entry point (or its absence) replaces ``previous``'s only when no window
    of ``previous`` was open at ``current``'s start (its entry message, else its last
    contact message). Exact when ``current`` spans less than 24 hours of contact messages
    (always true for one message); :func:`facts_from_events` folds message by message.
    """
    if previous is None:
        return current
    start = current.entry_point_at if current.entry_point_at is not None else (
        current.last_inbound_at
    )
    last_times = [t for t in (previous.last_inbound_at, current.last_inbound_at) if t is not None]
    last_inbound_at = max(last_times) if last_times else None
    if start is not None and not _window_open_at(previous, start, policy):
        return replace(current, last_inbound_at=last_inbound_at)
    return replace(previous, last_inbound_at=last_inbound_at)


def _contact_message(event: Mapping[str, Any]) -> tuple[int, str | None] | None:
    """(WhatsApp time, entry point) of a user event that is a real contact message, else None.

    Not contact messages: events without ``metadata.whatsapp.timestamp`` (typed in Rasa X,
    tests, other channels), ``EXTERNAL:`` intents (``trigger_intent``, reminders) and
    WhatsApp ``system`` messages (number changes), which do not open a window.
    """
    if str(event.get("text") or "").startswith(EXTERNAL_PREFIX):
        return None
    metadata = event.get("metadata")
    whatsapp = metadata.get("whatsapp") if isinstance(metadata, Mapping) else None
    if not isinstance(whatsapp, Mapping) or whatsapp.get("type") == "system":
        return None
    at = _seconds(whatsapp.get("timestamp"))
    if at is None:
        return None
    referral = whatsapp.get("referral")
    entry_point = None
    if isinstance(referral, Mapping):
        entry_point = referral.get("entry_point", referral.get("source_type"))
    return at, entry_point if _is_entry_point(entry_point) else None


def facts_from_events(
    events: Iterable[Mapping[str, Any]],
    policy: WindowPolicy = WindowPolicy(),
    previous: ConversationFacts | None = None,
) -> ConversationFacts:
    """Fold Rasa tracker events (dicts, as ``tracker.events`` gives them) into facts.

    ``previous``: facts from earlier sessions (:meth:`ConversationFacts.from_slots`); events
    already folded into them may be replayed without changing anything. Contact messages
    are ``user`` events with ``metadata.whatsapp.timestamp``, except ``EXTERNAL:`` intents
    (``trigger_intent``, reminders) and WhatsApp ``system`` messages; each is merged with
    :func:`merge_facts`. The first
    ``bot`` event after the entry message is the business's answer; for an entry point
    carried over in ``previous`` whose message is not among ``events``, the first bot event
    whose Rasa timestamp is not before the entry message's time.
    """
    facts = previous or ConversationFacts()
    entry_message_seen = False
    for event in events:
        kind = event.get("event")
        if kind == "user":
            message = _contact_message(event)
            if message is None:
                continue
            at, entry_point = message
            current = ConversationFacts(
                last_inbound_at=at,
                entry_point=entry_point,
                entry_point_at=at if entry_point else None,
            )
            facts = merge_facts(facts, current, policy)
            entry_message_seen = entry_message_seen or facts.entry_point_at == at
        elif kind == "bot" and facts.entry_point_at is not None:
            replied_at = _seconds(event.get("timestamp"))
            if (
                facts.first_reply_after_entry_at is None
                and replied_at is not None
                and (entry_message_seen or replied_at >= facts.entry_point_at)
            ):
                facts = replace(
                    facts, first_reply_after_entry_at=max(replied_at, facts.entry_point_at)
                )
    return facts
