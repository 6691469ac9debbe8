"""Per-message pricing (Meta's PMP model) and the customer-service / free-entry-point windows.

Rules (all times on the simulator clock):

- A contact's inbound message opens or renews a 24-hour customer-service window for the
  (business number, contact) pair.
- An inbound message carrying a referral with ``source_type`` ``ad`` or ``post`` makes the
  business's next message within 24 hours open a 72-hour free entry point window, starting at
  that message. Every message inside it (templates included) is free:
  ``referral_conversion`` / ``free_entry_point``, with a ``conversation`` object.
- Otherwise free-form messages (which need an open service window) are free
  ``service`` / ``free_customer_service``; UTILITY templates inside an open service window are
  free ``utility`` / ``free_customer_service``; other templates are billable ``regular`` with
  the template's category.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any

SERVICE_WINDOW_SECONDS = 24 * 3600
REFERRAL_REPLY_SECONDS = 24 * 3600
FREE_ENTRY_POINT_SECONDS = 72 * 3600
FREE_ENTRY_SOURCE_TYPES = ("ad", "post")


class PricingType(str, Enum):
    REGULAR = "regular"
    FREE_CUSTOMER_SERVICE = "free_customer_service"
    FREE_ENTRY_POINT = "free_entry_point"


@dataclass(frozen=True)
class Pricing:
    """The ``pricing`` object of a status webhook."""

    billable: bool
    category: str
    type: PricingType

    def to_json(self) -> dict[str, Any]:
        return {
            "billable": self.billable,
            "pricing_model": "PMP",
            "category": self.category,
            "type": self.type.value,
        }


@dataclass
class Conversation:
    """Window state for one (business phone number, contact) pair."""

    last_inbound_at: float | None = None
    referral_at: float | None = None
    free_entry_until: float | None = None
    free_entry_id: str | None = None

    def record_inbound(self, now: float, referral: dict[str, Any] | None) -> None:
        """An inbound message at ``now``: renews the service window, notes an ad/post referral."""
        self.last_inbound_at = now
        if (
            referral is not None
            and referral.get("source_type") in FREE_ENTRY_SOURCE_TYPES
            and not self.free_entry_open(now)
        ):
            self.referral_at = now

    def service_window_open(self, now: float) -> bool:
        """True while less than 24 hours have passed since the last inbound message."""
        return self.last_inbound_at is not None and now < self.last_inbound_at + (
            SERVICE_WINDOW_SECONDS
        )

    def service_window_expires_at(self) -> float | None:
        if self.last_inbound_at is None:
            return None
        return self.last_inbound_at + SERVICE_WINDOW_SECONDS

    def free_entry_open(self, now: float) -> bool:
        return self.free_entry_until is not None and now < self.free_entry_until

    def open_free_entry_if_due(self, now: float) -> None:
        """Called for each business message that will be delivered: opens the 72-hour window
        if an ad/post referral arrived less than 24 hours ago and no window is open."""
        if self.free_entry_open(now) or self.referral_at is None:
            return
        if now < self.referral_at + REFERRAL_REPLY_SECONDS:
            self.free_entry_until = now + FREE_ENTRY_POINT_SECONDS
            self.free_entry_id = secrets.token_hex(16)
        self.referral_at = None

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "service_window_open": self.service_window_open(now),
            "service_window_expires_at": self.service_window_expires_at(),
            "last_inbound_at": self.last_inbound_at,
            "free_entry_point_open": self.free_entry_open(now),
            "free_entry_point_expires_at": self.free_entry_until,
            "pending_referral_at": self.referral_at,
        }


def price(conversation: Conversation, now: float, template_category: str | None) -> Pricing:
    """Pricing of a deliverable business message; ``template_category`` None = free-form."""
    if conversation.free_entry_open(now):
        return Pricing(False, "referral_conversion", PricingType.FREE_ENTRY_POINT)
    if template_category is None:
        return Pricing(False, "service", PricingType.FREE_CUSTOMER_SERVICE)
    if template_category == "utility" and conversation.service_window_open(now):
        return Pricing(False, "utility", PricingType.FREE_CUSTOMER_SERVICE)
    return Pricing(True, template_category, PricingType.REGULAR)
