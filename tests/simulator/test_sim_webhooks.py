"""Webhooks delivered to the bot: envelope, signature, status sequence per contact behaviour,
retries, inbound message shapes, raw envelopes and the verification handshake."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

CORPUS = Path(
    os.environ.get(
        "WHATSAPP_CORPUS_DIR",
        Path(__file__).resolve().parents[3] / "shared" / "corpus" / "webhooks",
    )
)


async def test_status_sequence_and_signature(sim):
    await sim.inbound(type="text", text="hi")
    wamid = await sim.send_ok(
        {"type": "text", "text": {"body": "hello"}, "biz_opaque_callback_data": "order-7"}
    )
    await sim.sink.wait_statuses(wamid, 3)
    deliveries = [d for d in sim.sink.deliveries if d.statuses]
    assert [d.statuses[0]["status"] for d in deliveries] == ["sent", "delivered", "read"]
    for delivery in deliveries:
        assert delivery.signature_valid(sim.secret)
        assert not delivery.signature_valid("another secret")
        assert delivery.content_type.startswith("application/json")
        payload = delivery.payload
        assert payload["object"] == "whatsapp_business_account"
        (entry,) = payload["entry"]
        assert entry["id"] == sim.waba_id
        (change,) = entry["changes"]
        assert change["field"] == "messages"
        value = change["value"]
        assert value["messaging_product"] == "whatsapp"
        assert value["metadata"] == {
            "display_phone_number": sim.display_number,
            "phone_number_id": sim.phone_number_id,
        }
        (status,) = value["statuses"]
        assert status["id"] == wamid
        assert status["recipient_id"] == sim.contact
        assert status["timestamp"].isdigit()
        assert status["biz_opaque_callback_data"] == "order-7"
    record = await sim.message(wamid)
    assert record["status"] == "read"
    assert [s["status"] for s in record["statuses"]] == ["sent", "delivered", "read"]


async def test_status_shape_matches_meta_sample(sim):
    await sim.inbound(type="text", text="hi")
    wamid = await sim.send_text()
    (sent, *_) = await sim.sink.wait_statuses(wamid, 3)
    sample = json.loads((CORPUS / "status_sent_pmp_marketing_with_conversation.json").read_text())
    sample_status = sample["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert set(sent) == set(sample_status) - {"conversation"}
    assert set(sent["pricing"]) == set(sample_status["pricing"]) | {"billable"}


async def test_signature_covers_raw_bytes_with_meta_escaping(sim):
    await sim.inbound(type="text", text="città https://example.com/x")
    delivery = sim.sink.deliveries[-1]
    assert b"citt\\u00e0" in delivery.raw
    assert b"https:\\/\\/example.com\\/x" in delivery.raw
    assert delivery.signature_valid(sim.secret)
    reserialized = json.dumps(delivery.payload).encode()
    assert reserialized != delivery.raw
    assert delivery.messages[0]["text"]["body"] == "città https://example.com/x"


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("online", ["sent", "delivered", "read"]),
        ("no_read_receipts", ["sent", "delivered"]),
        ("offline", ["sent"]),
        ("blocked", ["failed"]),
        ("undeliverable", ["failed"]),
    ],
)
async def test_contact_behaviours(sim, behaviour: str, expected: list[str]):
    await sim.inbound(type="text", text="hi")
    status, _ = await sim.control("POST", f"/_sim/contacts/{sim.contact}", {"behaviour": behaviour})
    assert status == 200
    wamid = await sim.send_text()
    await sim.sink.wait_statuses(wamid, len(expected))
    await sim.idle()
    statuses = sim.sink.statuses(wamid)
    assert [s["status"] for s in statuses] == expected
    if expected == ["failed"]:
        assert statuses[0]["errors"][0]["code"] == 131026


async def test_offline_contact_gets_delivered_and_read_when_back_online(sim):
    await sim.inbound(type="text", text="hi")
    await sim.control("POST", f"/_sim/contacts/{sim.contact}", {"behaviour": "offline"})
    wamid = await sim.send_text()
    await sim.sink.wait_statuses(wamid, 1)
    await sim.idle()
    assert (await sim.message(wamid))["status"] == "sent"
    await sim.control("POST", f"/_sim/contacts/{sim.contact}", {"behaviour": "online"})
    statuses = await sim.sink.wait_statuses(wamid, 3)
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]


async def test_marketing_limit_fails_marketing_templates_only(sim):
    await sim.inbound(type="text", text="hi")
    await sim.control("POST", f"/_sim/contacts/{sim.contact}", {"behaviour": "marketing_limit"})
    marketing = await sim.send_ok(
        {
            "type": "template",
            "template": {
                "name": "summer_sale",
                "language": {"code": "en"},
                "components": [
                    {
                        "type": "header",
                        "parameters": [
                            {"type": "image", "image": {"link": "https://x.example/s.jpg"}}
                        ],
                    },
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "A"},
                            {"type": "text", "text": "B"},
                        ],
                    },
                    {
                        "type": "button",
                        "sub_type": "url",
                        "index": "0",
                        "parameters": [{"type": "text", "text": "c"}],
                    },
                ],
            },
        }
    )
    service = await sim.send_text()
    (failed,) = await sim.sink.wait_statuses(marketing, 1)
    assert failed["status"] == "failed"
    assert failed["errors"][0]["code"] == 131049
    assert [s["status"] for s in await sim.sink.wait_statuses(service, 3)] == [
        "sent",
        "delivered",
        "read",
    ]


async def test_unknown_behaviour_is_rejected(sim):
    status, body = await sim.control(
        "POST", f"/_sim/contacts/{sim.contact}", {"behaviour": "asleep"}
    )
    assert status == 400 and "behaviour" in body["error"]


async def test_reaction_gets_only_sent(sim):
    played = await sim.inbound(type="text", text="hi")
    wamid = await sim.send_ok(
        {"type": "reaction", "reaction": {"message_id": played["wamid"], "emoji": "👍"}}
    )
    await sim.sink.wait_statuses(wamid, 1)
    await sim.idle()
    assert [s["status"] for s in sim.sink.statuses(wamid)] == ["sent"]


async def test_reaction_to_unknown_message_fails_131009(sim):
    await sim.inbound(type="text", text="hi")
    wamid = await sim.send_ok(
        {"type": "reaction", "reaction": {"message_id": "wamid.not-in-this-chat", "emoji": "👍"}}
    )
    (failed,) = await sim.sink.wait_statuses(wamid, 1)
    assert failed["errors"][0]["code"] == 131009


async def test_retries_until_the_bot_answers_200(sim):
    sim.sink.answers = [500, 503]
    played = await sim.inbound(type="text", text="hi")
    assert played["webhook_status"] == 500
    await sim.sink.wait_until(lambda: len(sim.sink.deliveries) == 3)
    await sim.idle()
    assert [d.messages[0]["id"] for d in sim.sink.deliveries] == [played["wamid"]] * 3
    assert len({d.raw for d in sim.sink.deliveries}) == 1
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["webhooks"]["attempts"] == 3
    assert stats["webhooks"]["delivered"] == 1
    assert stats["webhooks"]["failed_attempts"] == 2


async def test_retries_are_bounded(sim):
    sim.sink.answers = [500] * 10
    await sim.inbound(type="text", text="hi")
    await sim.idle()
    assert len(sim.sink.deliveries) == 3  # webhook_max_attempts in the test config
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["webhooks"]["gave_up"] == 1


async def test_unreachable_bot_is_reported(make_sim):
    sim = await make_sim(webhook_url="http://127.0.0.1:9/unreachable", webhook_max_attempts=1)
    played = await sim.inbound(type="text", text="hi")
    assert played["webhook_status"] is None
    assert played["deliveries"][0]["error"]


# --- inbound message shapes ----------------------------------------------------------------


def sample_message(name: str) -> dict:
    sample = json.loads((CORPUS / name).read_text())
    return sample["entry"][0]["changes"][0]["value"]["messages"][0]


async def test_inbound_text_matches_meta_sample(sim):
    played = await sim.inbound(
        type="text", text="Does it come in another color?", name="Sheena Nelson"
    )
    delivery = sim.sink.deliveries[-1]
    assert delivery.signature_valid(sim.secret)
    value = delivery.values()[0]
    sample = json.loads((CORPUS / "text.json").read_text())
    sample_value = sample["entry"][0]["changes"][0]["value"]
    assert set(value) == set(sample_value)
    assert value["contacts"] == [{"profile": {"name": "Sheena Nelson"}, "wa_id": sim.contact}]
    (message,) = value["messages"]
    assert set(message) == set(sample_value["messages"][0])
    assert message["id"] == played["wamid"]
    assert message["from"] == sim.contact
    assert message["timestamp"] == played["timestamp"]
    assert message["text"] == {"body": "Does it come in another color?"}


@pytest.mark.parametrize(
    ("spec", "sample"),
    [
        (
            {
                "type": "location",
                "latitude": 37.44,
                "longitude": -122.16,
                "name": "Philz Coffee",
                "address": "101 Forest Ave",
                "url": "https://philzcoffee.com/",
            },
            "location_named.json",
        ),
        (
            {"type": "button", "text": "Unsubscribe", "reply_to": "wamid.T"},
            "button_template_quick_reply.json",
        ),
        (
            {
                "type": "interactive",
                "reply_type": "list_reply",
                "id": "priority_express",
                "title": "Priority Mail Express",
                "description": "Next Day to 2 Days",
                "reply_to": "wamid.L",
            },
            "interactive_list_reply.json",
        ),
        ({"type": "reaction", "message_id": "wamid.B", "emoji": ""}, "reaction.json"),
        ({"type": "unsupported", "unsupported_type": "edit"}, "unsupported_edit_131051.json"),
        (
            {
                "type": "text",
                "text": "Can I get more info about this?",
                "referral": {
                    "source_type": "ad",
                    "source_id": "1",
                    "source_url": "https://fb.me/x",
                    "headline": "Chat with us",
                    "ctwa_clid": "Aff",
                },
            },
            "text_ctwa_ad_referral.json",
        ),
        ({"type": "document", "caption": "my receipt", "filename": "receipt.pdf"}, "document.json"),
        ({"type": "sticker"}, "sticker_static.json"),
    ],
)
async def test_inbound_shapes_match_meta_samples(sim, spec: dict, sample: str):
    await sim.inbound(**spec)
    (message,) = sim.sink.last_messages
    expected = sample_message(sample)
    assert set(message) == set(expected)
    kind = expected["type"]
    if isinstance(expected.get(kind), dict):
        assert set(message[kind]) >= set(expected[kind]) - {"url"}
    if "context" in expected:
        assert message["context"]["from"] == sim.display_number
    if kind == "unsupported":
        assert message["errors"] == [{k: v for k, v in expected["errors"][0].items()}]


async def test_interactive_reply_type_follows_the_business_message(sim):
    await sim.inbound(type="text", text="hi")
    list_wamid = await sim.send_ok(
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick"},
                "action": {
                    "button": "Options",
                    "sections": [{"rows": [{"id": "a", "title": "A"}]}],
                },
            },
        }
    )
    await sim.inbound(type="interactive", reply_to=list_wamid, id="a", title="A")
    message = sim.sink.last_messages[0]
    assert message["interactive"] == {"type": "list_reply", "list_reply": {"id": "a", "title": "A"}}
    assert message["context"] == {"from": sim.display_number, "id": list_wamid}
    await sim.inbound(type="interactive", reply_type="nfm_reply", response_json={"flow_token": "t"})
    nfm = sim.sink.last_messages[0]["interactive"]["nfm_reply"]
    assert json.loads(nfm["response_json"]) == {"flow_token": "t"}
    assert nfm["name"] == "flow"


async def test_unsupported_error_codes(sim):
    for code in (131051, 131052, 131060, 130501):
        await sim.inbound(type="unsupported", unsupported_type="keep_in_chat", error_code=code)
        assert sim.sink.last_messages[0]["errors"][0]["code"] == code
    status, body = await sim.control(
        "POST", "/_sim/inbound", {"from": sim.contact, "type": "unsupported", "error_code": 1}
    )
    assert status == 400 and "error_code" in body["error"]


async def test_raw_message_is_sent_verbatim(sim):
    raw = {
        "from": sim.contact,
        "id": "wamid.RAW1",
        "timestamp": "1700000000",
        "type": "order",
        "order": {"catalog_id": "c1", "product_items": []},
    }
    played = await sim.inbound(raw=raw)
    assert played["wamid"] == "wamid.RAW1"
    assert sim.sink.last_messages == [raw]
    status, body = await sim.send({"status": "read", "message_id": "wamid.RAW1"})
    assert status == 200, body


async def test_control_inbound_errors(sim):
    for spec in (
        {"type": "text"},
        {"from": "abc", "type": "text", "text": "x"},
        {"from": sim.contact, "type": "location", "latitude": "north"},
        {"from": sim.contact, "type": "text", "text": "x", "phone_number_id": "1"},
    ):
        status, body = await sim.control("POST", "/_sim/inbound", spec)
        assert status == 400, spec
        assert body["error"]


# --- raw envelopes and verification --------------------------------------------------------


async def test_raw_webhook_is_forwarded_byte_for_byte_and_signed(sim):
    envelope = (CORPUS / "text.json").read_bytes()
    async with sim.http.post("/_sim/webhook", data=envelope) as response:
        result = await response.json()
    assert result["webhook_status"] == 200
    delivery = sim.sink.deliveries[-1]
    assert delivery.raw == envelope
    assert delivery.signature_valid(sim.secret)
    message_id = json.loads(envelope)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    status, _ = await sim.send({"status": "read", "message_id": message_id})
    assert status == 200  # registered as a received message
    wamid = await sim.send_text()  # and it opened the window
    assert (await sim.sink.wait_statuses(wamid, 1))[0]["status"] == "sent"


async def test_raw_webhook_unsigned_or_wrong_secret(sim):
    async with sim.http.post("/_sim/webhook?sign=false", data=b"{}") as response:
        assert (await response.json())["webhook_status"] == 200
    assert sim.sink.deliveries[-1].signature is None
    async with sim.http.post("/_sim/webhook?secret=other", data=b"not json") as response:
        assert response.status == 200
    assert sim.sink.deliveries[-1].raw == b"not json"
    assert sim.sink.deliveries[-1].signature_valid("other")
    assert not sim.sink.deliveries[-1].signature_valid(sim.secret)


async def test_verification_handshake(sim):
    status, ok = await sim.control("POST", "/_sim/verify", {"verify_token": sim.verify_token})
    assert status == 200 and ok["verified"] is True and ok["body"] == ok["challenge"]
    _, bad = await sim.control("POST", "/_sim/verify", {"verify_token": "wrong"})
    assert bad["verified"] is False and bad["status"] == 403


async def test_bearer_and_phone_number_checks(sim):
    status, body = await sim.send({"type": "text", "text": {"body": "x"}}, token=None)
    assert status == 401
    assert body["error"]["code"] == 190
    assert body["error"]["message"].startswith("Invalid OAuth access token")
    assert (await sim.send({"type": "text", "text": {"body": "x"}}, token="nope"))[0] == 401
    status, body = await sim.send({"type": "text", "text": {"body": "x"}}, phone_number_id="999999")
    assert status == 400 and body["error"]["code"] == 100
    assert "999999" in body["error"]["message"]
    status, _ = await sim.send({"type": "text", "text": {"body": "x"}}, version="v23.0")
    assert status == 200
    status, _ = await sim.graph(
        "GET", f"/v21.0/{sim.waba_id}/message_templates?access_token={sim.token}", token=None
    )
    assert status == 200
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["rejected"]["190"] == 2
