import json

import pytest

from tests.conftest import corpus_body, corpus_files
from whatsapp_core.webhook import (
    MAX_UPDATES_PER_BODY,
    DeliveryState,
    InvalidWebhook,
    WebhookEnvelope,
    WebhookField,
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
