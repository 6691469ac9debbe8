"""The link lines between the Rasa process and the ingress process round-trip exactly."""

import pytest

from whatsapp_core.delivery import DeliveryFailure
from whatsapp_core.ingress import (
    decode_accepted,
    decode_deliveries,
    encode_accepted,
    encode_deliveries,
)
from whatsapp_core.sender import ReadReceipt
from whatsapp_core.store import InboxItem, OutboxItem


def test_accepted_messages_and_failures_round_trip():
    metadata = {"whatsapp": {"type": "text", "raw": {"text": {"body": "ciao ☕"}}, "context": None}}
    items = [InboxItem("wamid.1", "393331234567", "106", "393331234567", 1749416400, True,
                       "ciao ☕", metadata)]
    failures = [DeliveryFailure.from_error(
        wamid="wamid.o", conversation_id="393331234567", code=131047,
        title="Re-engagement message", details="more than 24 hours",
    )]
    line = encode_accepted(items, failures)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_accepted(line) == (items, failures)


def test_replies_and_read_receipts_round_trip():
    jobs = [
        OutboxItem(7, "393331234567", None, "393331234567", "text",
                   {"type": "text", "text": {"body": "line one\nline two"}}),
        ReadReceipt("106", "393331234567", "wamid.1", True),
    ]
    line = encode_deliveries(jobs)
    assert line.count(b"\n") == 1
    assert decode_deliveries(line) == jobs


@pytest.mark.parametrize("line", [b"{}", b'{"new": [{"message_id": 1}], "failures": []}'])
def test_a_malformed_line_is_a_value_error(line):
    with pytest.raises(ValueError):
        decode_accepted(line)
