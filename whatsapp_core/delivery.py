"""What happened to an outbound message, in words a support agent can act on.

Meta reports delivery with ``statuses[]`` webhooks (``sent``, ``delivered``,
``read``, ``played``, ``failed``). A ``failed`` status becomes a
:class:`DeliveryFailure`: Meta's code, title and details, the catalogue's plain
explanation, whether a retry can help, and the recommended actions. The help-centre
article this product follows explains why a message can show as sent but never
arrive (contact offline past the 30-day retention, blocked business, restricted
country, missing ``delivered`` webhook, multi-device) and what to do (reach the
contact on another channel, ask the contact to write again, resend inside an open
window): :data:`STUCK_EXPLANATION` and the catalogue carry those words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from whatsapp_core.errors import RecommendedAction, lookup

WINDOW_CLOSED_CODE = 131047
AGENT_ATTENTION_CODES = frozenset({131026, 131049, 130472, 131050})
"""Failures no retry fixes and a person should know about (undeliverable, marketing
limits and experiments, opt-out)."""

STUCK_EXPLANATION = (
    "WhatsApp accepted the message but never confirmed delivery. The contact may not "
    "have been online within WhatsApp's 30-day retention, may have blocked the business "
    "number, may be in a restricted country, may use several devices, or Meta did not "
    "send the delivered webhook. The content cannot be recovered or resent automatically."
)
STUCK_ACTIONS = (
    RecommendedAction.REACH_CONTACT_OTHER_CHANNEL,
    RecommendedAction.ASK_CONTACT_TO_WRITE_AGAIN,
    RecommendedAction.RESEND_INSIDE_WINDOW,
)


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A failed outbound message, explained (see the module docstring)."""

    wamid: str | None
    conversation_id: str
    code: int | None
    meta_title: str
    meta_details: str
    explanation: str
    retry_can_help: bool
    actions: tuple[RecommendedAction, ...]

    @classmethod
    def from_error(
        cls,
        *,
        wamid: str | None,
        conversation_id: str,
        code: int | None,
        title: str | None,
        details: str | None,
    ) -> DeliveryFailure:
        """Explain Meta's error ``code`` with the catalogue."""
        info = lookup(code)
        return cls(
            wamid=wamid,
            conversation_id=conversation_id,
            code=code,
            meta_title=title or info.title,
            meta_details=details or "",
            explanation=info.explanation,
            retry_can_help=info.retryable,
            actions=(info.action, *info.fallback_actions),
        )

    @property
    def needs_template(self) -> bool:
        """The contact's window was closed: only a template can reach them now."""
        return self.code == WINDOW_CLOSED_CODE

    @property
    def needs_agent(self) -> bool:
        """No retry or template fixes this; a person should look at the conversation."""
        return self.code in AGENT_ATTENTION_CODES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for metadata, the agent summary and the timeline."""
        return {
            "wamid": self.wamid,
            "error_code": self.code,
            "meta_title": self.meta_title,
            "meta_details": self.meta_details,
            "explanation": self.explanation,
            "retry_can_help": self.retry_can_help,
            "recommended_actions": [action.value for action in self.actions],
            "needs_template": self.needs_template,
            "needs_agent": self.needs_agent,
        }
