"""The business phone numbers one channel serves, their tokens, and conversation ids.

credentials.yml ``phone_number_id`` takes one id, a list of ids, or list items that
are mappings ``{id: ..., access_token: ...}`` for a number with its own token::

    phone_number_id:
      - ${WHATSAPP_PHONE_NUMBER_ID}                       # the primary number
      - {id: ${WHATSAPP_SUPPORT_NUMBER_ID}, access_token: ${WHATSAPP_SUPPORT_TOKEN}}

WhatsApp's customer service window and free entry point belong to a pair (business
number, contact), so each pair is its own Rasa conversation:

- on the **primary** (first listed) number the conversation id is the contact's
  ``wa_id`` (``16505551234``), exactly as with a single number, so adding numbers later
  keeps every existing conversation;
- on any other number it is ``<wa_id>@<phone_number_id>``
  (``16505551234@106540352242923``).

Replies always go out from the number the conversation belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEPARATOR = "@"


class InvalidNumbers(ValueError):
    """The ``phone_number_id`` value cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class BusinessNumber:
    """One served phone number id and the token to send from it (None: the default)."""

    id: str
    access_token: str | None = None


@dataclass(frozen=True, slots=True)
class BusinessNumbers:
    """The served numbers, in configuration order; the first is the primary."""

    numbers: tuple[BusinessNumber, ...]
    default_access_token: str

    @classmethod
    def parse(cls, value: Any, default_access_token: str) -> BusinessNumbers:
        """Read credentials.yml's ``phone_number_id`` (see the module docstring)."""
        items = value if isinstance(value, list) else [value]
        numbers = []
        for item in items:
            if isinstance(item, Mapping):
                number_id = str(item.get("id") or "").strip()
                token = str(item.get("access_token") or "").strip() or None
            else:
                number_id, token = str(item if item is not None else "").strip(), None
            if not number_id:
                raise InvalidNumbers("phone_number_id: every number needs an id")
            numbers.append(BusinessNumber(number_id, token))
        if not numbers:
            raise InvalidNumbers("phone_number_id: at least one number is needed")
        if len({n.id for n in numbers}) != len(numbers):
            raise InvalidNumbers("phone_number_id: a number is listed twice")
        return cls(tuple(numbers), default_access_token)

    @property
    def primary(self) -> str:
        return self.numbers[0].id

    def serves(self, phone_number_id: str | None) -> bool:
        """Is ``phone_number_id`` one of ours? (None: a webhook without metadata.)"""
        return phone_number_id is None or any(n.id == phone_number_id for n in self.numbers)

    def access_token(self, phone_number_id: str | None) -> str:
        """The token to send from ``phone_number_id`` (its own, else the channel's)."""
        for number in self.numbers:
            if number.id == phone_number_id and number.access_token:
                return number.access_token
        return self.default_access_token

    def conversation_id(self, contact: str, phone_number_id: str | None) -> str:
        """The Rasa conversation id of ``contact`` writing to ``phone_number_id``."""
        if phone_number_id is None or phone_number_id == self.primary:
            return contact
        return f"{contact}{SEPARATOR}{phone_number_id}"

    def address(self, conversation_id: str) -> tuple[str, str]:
        """``(contact, phone_number_id)`` a conversation's replies go to and from."""
        contact, separator, number = conversation_id.rpartition(SEPARATOR)
        if separator and self.serves(number):
            return contact, number
        return conversation_id, self.primary
