"""Simulator configuration: business numbers, credentials, webhook delivery and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:5005/webhooks/whatsapp/webhook"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_PHONE_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"


@dataclass(frozen=True)
class PhoneNumber:
    """A business phone number owned by the simulated WhatsApp Business Account."""

    id: str
    display_phone_number: str


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator needs; immutable (``POST /_sim/config`` replaces the
    ``webhook_url`` by building a new one).

    ``webhook_url`` None (or empty) disables webhook delivery: statuses still progress in the
    simulator's records. Webhooks are retried ``webhook_max_attempts`` times in all, waiting
    ``webhook_retry_base_seconds * 2**(attempt-1)`` (capped at ``webhook_retry_max_seconds``)
    after each non-200 answer or connection failure. ``status_delay_seconds`` is the real-time
    pause before a message's first status and between its statuses.
    """

    webhook_url: str | None = DEFAULT_WEBHOOK_URL
    app_secret: str = "SECRET"
    access_token: str = "TOKEN"
    phone_numbers: tuple[PhoneNumber, ...] = field(
        default=(PhoneNumber(DEFAULT_PHONE_NUMBER_ID, DEFAULT_DISPLAY_PHONE_NUMBER),)
    )
    waba_id: str = DEFAULT_WABA_ID
    templates_path: Path | None = None
    webhook_max_attempts: int = 5
    webhook_retry_base_seconds: float = 1.0
    webhook_retry_max_seconds: float = 30.0
    webhook_timeout_seconds: float = 10.0
    status_delay_seconds: float = 0.05

    def __post_init__(self) -> None:
        if not self.phone_numbers:
            raise ValueError("at least one phone number is required")
        if self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts must be at least 1")

    @property
    def default_phone(self) -> PhoneNumber:
        """The first configured number; used when a control request names none."""
        return self.phone_numbers[0]

    def phone_number(self, phone_number_id: str) -> PhoneNumber | None:
        """The configured number with this id, or None."""
        for phone in self.phone_numbers:
            if phone.id == phone_number_id:
                return phone
        return None
