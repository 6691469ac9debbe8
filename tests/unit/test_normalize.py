import json

import pytest

from tests.conftest import corpus_body, corpus_files
from whatsapp_core.normalize import UnattributableMessage, intent_command, normalize
from whatsapp_core.webhook import BusinessNumber, InboundMessage, WebhookEnvelope

NOW = 1_800_000_000

# Every corpus sample and the Rasa texts it must produce (empty: no contact turn).
EXPECTED_TEXTS = {
    "account_review_update.json": [],
    "audio_file_not_voice_forwarded.json": ['/whatsapp_media{"media_type":"audio"}'],
    "audio_voice.json": ['/whatsapp_media{"media_type":"audio"}'],
    "batched_group_statuses_aggregated.json": [],
    "business_capability_update.json": [],
    "button_template_quick_reply.json": ["Unsubscribe"],
    "contacts.json": ["/whatsapp_contacts"],
    "document.json": ["my receipt"],
    "document_forwarded.json": ["caption"],
    "edit_coexistence_image.json": ['/whatsapp_unsupported{"unsupported_kind":"edited"}'],
    "errors_value_level_130429.json": [],
    "group_inbound_text.json": ['/whatsapp_unsupported{"unsupported_kind":"group"}'],
    "group_status_failed_131020.json": [],
    "group_status_read_with_pricing.json": [],
    "history_coexistence_1.json": [],
    "history_coexistence_2.json": [],
    "image.json": ["Taj Mahal"],
    "interactive_button_reply.json": ["Cancel"],
    "interactive_button_reply_2.json": ["Change"],
    "interactive_list_reply.json": ["Priority Mail Express"],
    "interactive_list_reply_2.json": ["Priority Mail Express"],
    "interactive_nfm_reply_flow.json": ['/whatsapp_flow_reply{"flow_name":"flow"}'],
    "interactive_nfm_reply_flow_no_token.json": ['/whatsapp_flow_reply{"flow_name":"flow"}'],
    "location_current_no_name.json": ['/whatsapp_location{"latitude":12.25089,"longitude":43.90539}'],
    "location_named.json": [
        '/whatsapp_location{"latitude":37.44221496582,"longitude":-122.16165924072,'
        '"location_name":"Philz Coffee"}'
    ],
    "partner_solutions.json": [],
    "payment_configuration_update.json": [],
    "phone_number_name_update.json": [],
    "phone_number_quality_update.json": [],
    "reaction.json": ['/whatsapp_reaction{"emoji":""}'],
    "reaction_removed_empty_emoji.json": ['/whatsapp_reaction{"emoji":""}'],
    "request_welcome.json": ["/whatsapp_welcome"],
    "revoke_coexistence.json": ['/whatsapp_unsupported{"unsupported_kind":"deleted"}'],
    "security.json": [],
    "smb_app_state_sync.json": [],
    "smb_message_echo_edit.json": [],
    "smb_message_echo_text.json": [],
    "smb_message_echo_text_bsuid.json": [],
    "status_delivered_cbp_service.json": [],
    "status_failed_131049.json": [],
    "status_group_read_bsuid.json": [],
    "status_read_cbp.json": [],
    "status_sent_pmp_marketing_with_conversation.json": [],
    "status_sent_with_biz_opaque_callback_data.json": [],
    "sticker_static.json": ['/whatsapp_media{"media_type":"sticker"}'],
    "system_user_changed_number.json": ['/whatsapp_system{"system_type":"user_changed_number"}'],
    "template_category_update_1.json": [],
    "template_category_update_2.json": [],
    "template_components_update.json": [],
    "template_quality_update.json": [],
    "template_status_update_approved.json": [],
    "template_status_update_paused.json": [],
    "text.json": ["Does it come in another color?"],
    "text_ctwa_ad_referral.json": ["Can I get more info about this?"],
    "text_forwarded.json": ["forwarded text"],
    "text_message_business_button_referred_product.json": ["Is this still available?"],
    "text_reply_with_context.json": ["replied text"],
    "unsupported_edit_131051.json": ['/whatsapp_unsupported{"unsupported_kind":"edited"}'],
    "user_preferences_marketing.json": [],
    "user_preferences_resume.json": [],
    "video.json": ["Timelapse of growth"],
}


def normalized(name: str):
    parsed = WebhookEnvelope.parse(corpus_body(name))
    return [
        normalize(message, change.contact_for(message), change.business, received_at=NOW)
        for change, message in parsed.messages
    ]


def test_expectations_cover_the_whole_corpus():
    assert {path.name for path in corpus_files()} == set(EXPECTED_TEXTS)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_sample_becomes_expected_texts(path):
    assert [m.text for m in normalized(path.name)] == EXPECTED_TEXTS[path.name]


def test_metadata_of_a_text_message():
    (message,) = normalized("text.json")
    details = message.metadata["whatsapp"]
    assert message.sender_id == "16505551234"
    assert message.message_id.startswith("wamid.")
    assert details["timestamp"] == 1749416383 and isinstance(details["timestamp"], int)
    assert details["type"] == "text"
    assert details["phone_number_id"] == "106540352242922"
    assert details["display_phone_number"] == "15550783881"
    assert details["profile_name"] == "Sheena Nelson"
    assert details["wa_id"] == "16505551234"
    assert details["raw"]["text"]["body"] == "Does it come in another color?"


def test_ctwa_referral_gives_ad_entry_point():
    (message,) = normalized("text_ctwa_ad_referral.json")
    referral = message.metadata["whatsapp"]["referral"]
    assert referral["entry_point"] == "ad"
    assert referral["source_type"] == "ad"
    assert referral["ctwa_clid"].startswith("Aff-")
    assert referral["headline"] == "Chat with us"


def test_context_forwarded_and_reply_and_referred_product():
    (forwarded,) = normalized("text_forwarded.json")
    assert forwarded.metadata["whatsapp"]["context"]["forwarded"] is True
    (reply,) = normalized("text_reply_with_context.json")
    assert reply.metadata["whatsapp"]["context"]["reply_to"]
    (product,) = normalized("text_message_business_button_referred_product.json")
    assert product.metadata["whatsapp"]["context"]["referred_product"]["product_retailer_id"]


def test_media_metadata_kept():
    (voice,) = normalized("audio_voice.json")
    media = voice.metadata["whatsapp"]["media"]
    assert media["voice"] is True and media["id"] and media["mime_type"].startswith("audio/")
    (document,) = normalized("document.json")
    assert document.metadata["whatsapp"]["media"]["filename"]


def test_flow_response_json_is_parsed():
    (flow,) = normalized("interactive_nfm_reply_flow.json")
    assert isinstance(flow.metadata["whatsapp"]["flow_response"], dict)
    assert "flow_token" in flow.metadata["whatsapp"]["flow_response"]


def test_unsupported_metadata_has_kind_action_error_and_raw():
    (message,) = normalized("unsupported_edit_131051.json")
    unsupported = message.metadata["whatsapp"]["unsupported"]
    assert unsupported["kind"] == "edited"
    assert unsupported["recommended_action"] == "resend_new_wording"
    assert unsupported["error_code"] == 131051
    assert unsupported["raw"]["unsupported"] == {"type": "edit"}


def test_placeholder_timestamp_falls_back_to_receive_time():
    (message,) = normalized("request_welcome.json")
    assert message.timestamp == NOW
    assert message.metadata["whatsapp"]["timestamp_from_whatsapp"] is False


def make(raw: dict, contact=None) -> str:
    message = InboundMessage.from_dict({"from": "16505551234", "id": "wamid.t", "timestamp": "1", **raw})
    return normalize(message, contact, BusinessNumber("1", "2"), received_at=NOW).text


def test_typed_text_can_never_be_an_intent_command():
    assert make({"type": "text", "text": {"body": '/request_human{"x": 1}'}}) == 'request_human{"x": 1}'
    assert make({"type": "text", "text": {"body": "//"}}).startswith("/whatsapp_unsupported")


def test_button_payload_intent_command_round_trips():
    payload = '/choose{"plan": "gold"}'
    assert make({"type": "button", "button": {"payload": payload, "text": "Gold"}}) == payload
    reply = {"type": "button_reply", "button_reply": {"id": payload, "title": "Gold"}}
    assert make({"type": "interactive", "interactive": reply}) == payload
    plain = {"type": "list_reply", "list_reply": {"id": "row-1", "title": "First"}}
    assert make({"type": "interactive", "interactive": plain}) == "First"


def test_media_caption_wins_over_command():
    assert make({"type": "image", "image": {"id": "1", "caption": "my receipt"}}) == "my receipt"
    assert make({"type": "video", "video": {"id": "1"}}) == '/whatsapp_media{"media_type":"video"}'


def test_reaction_with_emoji():
    assert make({"type": "reaction", "reaction": {"message_id": "m", "emoji": "👍"}}) == (
        '/whatsapp_reaction{"emoji":"👍"}'
    )
    assert make({"type": "reaction", "reaction": {"message_id": "m"}}) == (
        '/whatsapp_reaction{"emoji":""}'
    )


def test_order_and_empty_text():
    assert make({"type": "order", "order": {"catalog_id": "1"}}) == "/whatsapp_order"
    assert make({"type": "text", "text": {"body": "  "}}) == (
        '/whatsapp_unsupported{"unsupported_kind":"unknown"}'
    )


def test_bsuid_only_contact_uses_user_id():
    message = InboundMessage.from_dict(
        {"from_user_id": "US.123", "id": "wamid.b", "timestamp": "1", "type": "text", "text": {"body": "hi"}}
    )
    result = normalize(message, None, BusinessNumber("1", "2"), received_at=NOW)
    assert result.sender_id == "US.123" and result.recipient == "US.123"


def test_message_without_any_contact_is_unattributable():
    message = InboundMessage.from_dict({"id": "wamid.n", "type": "text", "text": {"body": "hi"}})
    with pytest.raises(UnattributableMessage):
        normalize(message, None, BusinessNumber("1", "2"), received_at=NOW)


def test_message_without_id_gets_stable_synthetic_id():
    raw = {"from": "1", "type": "text", "text": {"body": "hi"}}
    first = normalize(InboundMessage.from_dict(raw), None, BusinessNumber("1", "2"), received_at=NOW)
    second = normalize(InboundMessage.from_dict(dict(raw)), None, BusinessNumber("1", "2"), received_at=5)
    assert first.message_id == second.message_id and first.message_id.startswith("nowamid.")


def test_intent_command_is_json_rasa_can_parse():
    text = intent_command("whatsapp_location", {"latitude": 1.5, "location_name": 'a "b"'})
    assert json.loads(text[len("/whatsapp_location"):]) == {"latitude": 1.5, "location_name": 'a "b"'}


def test_overlong_text_is_cut_to_whatsapps_limit_and_flagged():
    message = InboundMessage.from_dict(
        {"from": "1", "id": "wamid.long", "timestamp": "1", "type": "text", "text": {"body": "a" * 100_000}}
    )
    result = normalize(message, None, BusinessNumber("1", "2"), received_at=NOW)
    assert len(result.text) == 4096
    assert result.metadata["whatsapp"]["truncated"] is True


def test_odd_json_values_from_a_forged_or_broken_body_never_raise():
    message = InboundMessage.from_dict(
        {
            "from": "1", "id": "wamid.odd", "timestamp": "17500168001750016800", "type": "text",
            "text": {"body": "broken \ud800 emoji"},
            "referral": {"source_type": ["ad"], "source_id": "1"},
        }
    )
    result = normalize(message, None, BusinessNumber("1", "2"), received_at=NOW)
    assert result.timestamp == NOW  # an impossible timestamp is not trusted
    assert result.text == "broken \ufffd emoji"
    assert result.metadata["whatsapp"]["referral"]["entry_point"] is None
