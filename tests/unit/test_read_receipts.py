"""BurstReceipts: which message a turn marks read."""

from __future__ import annotations

from whatsapp_core.read_receipts import BurstReceipts
from whatsapp_core.store import InboxItem

PHONE = "106540352242922"


def message(n: int, ts: int | None = None, phone: str | None = PHONE, conversation="393331") -> InboxItem:
    return InboxItem(f"wamid.m{n}", conversation, phone, conversation, ts or n, True, str(n), {})


def test_alone_a_message_is_marked_itself():
    assert BurstReceipts().target(message(1), ()) == message(1)


def test_a_burst_is_marked_once_at_its_newest_message():
    receipts = BurstReceipts()
    burst = [message(2), message(3), message(4)]
    assert receipts.target(message(1), burst) == message(4)
    assert receipts.target(message(2), burst[1:]) is None
    assert receipts.target(message(3), burst[2:]) is None
    assert receipts.target(message(4), ()) is None
    assert receipts.target(message(5), ()) == message(5)


def test_ties_on_whatsapp_time_go_to_the_last_to_arrive():
    assert BurstReceipts().target(message(1, ts=7), [message(2, ts=7), message(3, ts=7)]) == message(3, ts=7)


def test_messages_to_another_number_or_without_a_wamid_are_not_covered():
    receipts = BurstReceipts()
    other_number = message(2, phone="999")
    synthetic = InboxItem("album:1", "393331", PHONE, "393331", 9, True, "", {})
    assert receipts.target(message(1), [other_number, synthetic]) == message(1)
    assert receipts.target(other_number, ()) == other_number
    assert receipts.target(synthetic, ()) is None
    assert receipts.target(message(3, phone=None), ()) is None


def test_forget_drops_what_a_receipt_covered():
    receipts = BurstReceipts()
    assert receipts.target(message(1), [message(2)]) == message(2)
    receipts.forget("393331")
    assert receipts.target(message(2), ()) == message(2)


def test_conversations_are_apart():
    receipts = BurstReceipts()
    assert receipts.target(message(1), [message(2)]) == message(2)
    assert receipts.target(message(2, conversation="393332"), ()) == message(2, conversation="393332")
