"""Read receipts: one per burst of a contact's messages.

Marking a message read on the Cloud API also marks the earlier messages of the chat read
(Meta, "Mark messages as read"; ``reference/whatsapp-cloud-api.md``, send API). So when a
turn starts while more messages of the same contact already wait for theirs, one receipt
for the newest of them covers the whole burst and their turns send none: a burst of five
messages costs one Graph call instead of five, and the contact sees all five read (with
the typing indicator) as soon as the bot starts on the first.

What a receipt covered is kept in memory per conversation only while that conversation
has turns waiting; losing it (a restart) costs one more receipt, never a missing one.
"""

from __future__ import annotations

from collections.abc import Iterable

from whatsapp_core.store import InboxItem


def can_mark_read(item: InboxItem) -> bool:
    """Only a contact's WhatsApp message (a ``wamid.`` on a known business number) can be
    marked read; merged or synthetic items without one cannot."""
    return bool(item.phone_number_id) and item.message_id.startswith("wamid.")


class BurstReceipts:
    """Chooses the message to mark read when a turn starts; see the module docstring."""

    def __init__(self) -> None:
        self._covered: dict[str, set[str]] = {}

    def target(self, item: InboxItem, waiting: Iterable[object]) -> InboxItem | None:
        """The message to mark read as ``item``'s turn starts, or None when none is due:
        a receipt sent earlier covered ``item``, or it cannot be marked read.

        ``waiting``: the jobs whose turn comes after ``item``'s in its conversation (it may
        be among them: a message run early, before the turn it was queued for). When some are
        messages to the same business number, the newest of them (WhatsApp timestamp,
        then arrival) is the target and their own turns will send no receipt."""
        if not can_mark_read(item):
            return None
        covered = self._covered.get(item.conversation_id)
        if covered is not None and item.message_id in covered:
            covered.discard(item.message_id)
            return None
        later = [
            job
            for job in waiting
            if isinstance(job, InboxItem)
            and job.message_id != item.message_id
            and can_mark_read(job)
            and job.phone_number_id == item.phone_number_id
        ]
        if not later:
            return item
        self._covered.setdefault(item.conversation_id, set()).update(
            job.message_id for job in later
        )
        # max() keeps the first of equals: reversed, the last to arrive wins a tie
        return max(reversed([item, *later]), key=lambda message: message.wa_timestamp)

    def forget(self, conversation_id: str) -> None:
        """The conversation has no turn waiting any more: nothing of it stays covered."""
        self._covered.pop(conversation_id, None)
