import json
import random

import pytest

from tests.conftest import CORPUS_DIR, corpus_body, corpus_files
from tests.reliability import fuzzing
from whatsapp_core.webhook import (
    MAX_UPDATES_PER_BODY,
    DeliveryState,
    InvalidWebhook,
    WebhookEnvelope,
    WebhookField,
    parse_status_only,
)


def envelope(value: dict, field: str = "messages") -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": field, "value": value}]}],
        }
    ).encode()


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_every_corpus_sample_parses(path):
    parsed = WebhookEnvelope.parse(path.read_bytes())
    assert parsed.changes


def test_text_message_typed():
    parsed = WebhookEnvelope.parse(corpus_body("text.json"))
    ((change, message),) = parsed.messages
    assert change.business.phone_number_id == "106540352242922"
    assert message.type == "text" and message.content["body"] == "Does it come in another color?"
    assert message.timestamp == 1749416383
    assert change.contact_for(message).profile_name == "Sheena Nelson"


def test_statuses_typed_and_not_messages():
    parsed = WebhookEnvelope.parse(corpus_body("status_failed_131049.json"))
    assert parsed.messages == []
    ((_, status),) = parsed.statuses
    assert status.state is DeliveryState.FAILED
    assert status.errors[0].code == 131049


def test_pricing_nested_in_conversation_is_found():
    parsed = WebhookEnvelope.parse(corpus_body("batched_group_statuses_aggregated.json"))
    assert len(parsed.statuses) == 2


def test_unknown_status_value_does_not_crash():
    body = envelope({"statuses": [{"id": "wamid.x", "status": "deleted"}]})
    ((_, status),) = WebhookEnvelope.parse(body).statuses
    assert status.state is DeliveryState.UNKNOWN


def test_non_message_fields_are_routed_by_name():
    parsed = WebhookEnvelope.parse(corpus_body("template_status_update_approved.json"))
    assert parsed.changes[0].route is WebhookField.TEMPLATE_STATUS
    assert WebhookField.of("security") is WebhookField.UNKNOWN


def test_messages_on_other_fields_are_not_contact_turns():
    standby = envelope(
        {"messages": [{"from": "1", "id": "wamid.s", "type": "text", "text": {"body": "x"}}]},
        field="standby",
    )
    assert WebhookEnvelope.parse(standby).messages == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [1]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [1]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": []}]}]}',
        envelope({"messages": {"id": "x"}}),
        envelope({"messages": ["x"]}),
        envelope({"statuses": "x"}),
        b"[" * 100000 + b"]" * 100000,
    ],
)
def test_malformed_bodies_are_invalid_with_400(body):
    with pytest.raises(InvalidWebhook) as error:
        WebhookEnvelope.parse(body)
    assert error.value.http_status == 400


def test_too_many_updates_is_413():
    messages = [{"id": f"wamid.{i}", "from": "1", "type": "text"} for i in range(MAX_UPDATES_PER_BODY + 1)]
    with pytest.raises(InvalidWebhook) as error:
        WebhookEnvelope.parse(envelope({"messages": messages}))
    assert error.value.http_status == 413


def test_placeholder_timestamp_becomes_none():
    parsed = WebhookEnvelope.parse(corpus_body("request_welcome.json"))
    ((_, message),) = parsed.messages
    assert message.timestamp is None


# ---------------------------------------------------------------- status-only fast path
def _same_as_full_parse(body: bytes) -> bool:
    """parse_status_only(body) gives up (None), or gives exactly the statuses the full
    parse gives, for a body the full parse accepts and that carries nothing else."""
    fast = parse_status_only(body)
    if fast is None:
        return True
    envelope = WebhookEnvelope.parse(body)  # raises if the fast path accepted a bad body
    status_only = all(
        change.route is WebhookField.MESSAGES and not change.messages and not change.errors
        for change in envelope.changes
    )
    return status_only and fast == tuple(status for _, status in envelope.statuses)


def test_the_status_fast_path_takes_every_status_only_sample_and_nothing_else():
    taken = []
    for path in corpus_files():
        body = corpus_body(path)
        assert _same_as_full_parse(body), path.name
        if parse_status_only(body) is not None:
            taken.append(path.name)
    assert "status_read_cbp" in {name.removesuffix(".json") for name in taken}
    assert not [name for name in taken if "text" in name or "image" in name]


def test_the_status_fast_path_agrees_with_the_full_parse_on_mutated_bodies():
    corpus = fuzzing.load_corpus(CORPUS_DIR)
    rng = random.Random(11)
    fast_taken = 0
    for _ in range(3000):
        body, _signature, _kind = fuzzing.case(corpus, "s", rng)
        assert _same_as_full_parse(body), body[:300]
        fast_taken += parse_status_only(body) is not None
    assert fast_taken > 100  # the mutations reach the fast path, not only its refusals
