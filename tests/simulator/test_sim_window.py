"""Customer-service window (24 h), re-engagement failure 131047, free entry point and pricing."""

from __future__ import annotations

from simulator.config import PhoneNumber

DAY = 24 * 3600

SERVICE = {
    "billable": False,
    "pricing_model": "PMP",
    "category": "service",
    "type": "free_customer_service",
}
FREE_ENTRY = {
    "billable": False,
    "pricing_model": "PMP",
    "category": "referral_conversion",
    "type": "free_entry_point",
}
REFERRAL = {
    "source_type": "ad",
    "source_id": "120226305854810726",
    "source_url": "https://fb.me/3cr4Wqqkv",
    "headline": "Chat with us",
    "ctwa_clid": "Aff-n8ZTODiE79d22",
}


def follow_up(name: str = "Sheena", language: str = "en") -> dict:
    return {
        "type": "template",
        "template": {
            "name": "follow_up",
            "language": {"code": language},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": name}]}],
        },
    }


def summer_sale() -> dict:
    return {
        "type": "template",
        "template": {
            "name": "summer_sale",
            "language": {"code": "en"},
            "components": [
                {
                    "type": "header",
                    "parameters": [
                        {"type": "image", "image": {"link": "https://shop.example.com/s.jpg"}}
                    ],
                },
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Sheena"},
                        {"type": "text", "text": "25%"},
                    ],
                },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": "summer25"}],
                },
            ],
        },
    }


async def test_free_form_without_any_inbound_fails_131047(sim):
    wamid = await sim.send_text("are you there?")
    (failed,) = await sim.sink.wait_statuses(wamid, 1)
    assert failed["status"] == "failed"
    assert failed["recipient_id"] == sim.contact
    assert failed["errors"][0]["code"] == 131047
    assert "pricing" not in failed


async def test_window_open_at_23_59_59_and_closed_after_24h_plus_1s(sim):
    await sim.inbound(type="text", text="hi")
    await sim.advance(DAY - 1)
    inside = await sim.send_text("still in time")
    await sim.advance(2)  # 24 h + 1 s after the inbound message
    outside = await sim.send_text("too late")
    statuses = await sim.sink.wait_statuses(inside, 3)
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    (failed,) = await sim.sink.wait_statuses(outside, 1)
    delivery = next(d for d in sim.sink.deliveries if outside in [s["id"] for s in d.statuses])
    assert delivery.signature_valid(sim.secret)
    error = failed["errors"][0]
    assert failed["status"] == "failed"
    assert error["code"] == 131047
    assert error["title"] == "Re-engagement message"
    assert error["error_data"]["details"] == (
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number."
    )
    record = await sim.message(outside)
    assert record["status"] == "failed"
    assert record["error"]["code"] == 131047


async def test_each_inbound_message_renews_the_window(sim):
    await sim.inbound(type="text", text="one")
    await sim.advance(DAY - 10)
    await sim.inbound(type="text", text="two")
    await sim.advance(DAY - 10)
    wamid = await sim.send_text("still open")
    statuses = await sim.sink.wait_statuses(wamid, 3)
    assert statuses[0]["status"] == "sent"


async def test_templates_are_allowed_outside_the_window_and_billed(sim):
    await sim.inbound(type="text", text="hi")
    await sim.advance(2 * DAY)
    wamid = await sim.send_ok(follow_up())
    sent, delivered, read = await sim.sink.wait_statuses(wamid, 3)
    regular = {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
    assert sent["pricing"] == regular
    assert delivered["pricing"] == regular
    assert "pricing" not in read
    assert "conversation" not in sent


async def test_free_form_in_window_is_free_service(sim):
    await sim.inbound(type="text", text="hi")
    wamid = await sim.send_text()
    sent, delivered, read = await sim.sink.wait_statuses(wamid, 3)
    assert sent["pricing"] == SERVICE
    assert delivered["pricing"] == SERVICE
    assert "pricing" not in read
    assert "conversation" not in sent
    assert (await sim.message(wamid))["pricing"] == SERVICE


async def test_utility_template_in_window_is_free_marketing_is_not(sim):
    await sim.inbound(type="text", text="hi")
    utility = await sim.send_ok(follow_up())
    marketing = await sim.send_ok(summer_sale())
    utility_sent = (await sim.sink.wait_statuses(utility, 1))[0]
    marketing_sent = (await sim.sink.wait_statuses(marketing, 1))[0]
    assert utility_sent["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "category": "utility",
        "type": "free_customer_service",
    }
    assert marketing_sent["pricing"] == {
        "billable": True,
        "pricing_model": "PMP",
        "category": "marketing",
        "type": "regular",
    }


async def test_free_entry_point_opens_on_reply_to_an_ad_referral(sim):
    await sim.inbound(type="text", text="Can I get more info?", referral=REFERRAL)
    await sim.advance(3600)
    first = await sim.send_text("Sure!")
    sent, delivered, read = await sim.sink.wait_statuses(first, 3)
    assert sent["pricing"] == FREE_ENTRY
    assert delivered["pricing"] == FREE_ENTRY
    conversation = sent["conversation"]
    assert conversation["origin"] == {"type": "referral_conversion"}
    reply_time = int(sent["timestamp"])
    assert abs(int(conversation["expiration_timestamp"]) - (reply_time + 72 * 3600)) <= 1
    assert "expiration_timestamp" not in delivered["conversation"]
    assert delivered["conversation"]["id"] == conversation["id"]

    # 48 h later: service window closed, free entry point still open -> templates are free.
    await sim.advance(2 * DAY)
    template = await sim.send_ok(summer_sale())
    (template_sent, *_) = await sim.sink.wait_statuses(template, 1)
    assert template_sent["pricing"] == FREE_ENTRY
    assert template_sent["conversation"]["id"] == conversation["id"]
    free_form = await sim.send_text("free-form still needs the service window")
    assert (await sim.sink.wait_statuses(free_form, 1))[0]["errors"][0]["code"] == 131047

    # After 72 h the free entry point window is over.
    await sim.advance(DAY + 1)
    late = await sim.send_ok(summer_sale())
    (late_sent, *_) = await sim.sink.wait_statuses(late, 1)
    assert late_sent["pricing"]["type"] == "regular"
    assert "conversation" not in late_sent


async def test_no_free_entry_point_when_reply_comes_after_24h(sim):
    await sim.inbound(type="text", text="info?", referral=REFERRAL)
    await sim.advance(DAY + 1)
    wamid = await sim.send_ok(follow_up())
    (sent, *_) = await sim.sink.wait_statuses(wamid, 1)
    assert sent["pricing"]["type"] == "regular"
    assert "conversation" not in sent


async def test_referral_without_ad_or_post_source_is_not_a_free_entry_point(sim):
    await sim.inbound(type="text", text="info?", referral={**REFERRAL, "source_type": "other"})
    wamid = await sim.send_text("hello")
    (sent, *_) = await sim.sink.wait_statuses(wamid, 1)
    assert sent["pricing"] == SERVICE


async def test_windows_are_per_business_number(make_sim):
    other = PhoneNumber("200000000000001", "15550000001")
    sim = await make_sim(phone_numbers=(PhoneNumber("106540352242922", "15550783881"), other))
    await sim.inbound(type="text", text="hi", phone_number_id=other.id)
    status, body = await sim.send(
        {"type": "text", "text": {"body": "from the other number"}}, phone_number_id=other.id
    )
    assert status == 200, body
    wamid_other = body["messages"][0]["id"]
    wamid_default = await sim.send_text("from the default number")
    other_statuses = await sim.sink.wait_statuses(wamid_other, 3)
    (default_failed,) = await sim.sink.wait_statuses(wamid_default, 1)
    assert other_statuses[0]["status"] == "sent"
    assert default_failed["errors"][0]["code"] == 131047
    delivery = next(d for d in sim.sink.deliveries if wamid_other in [s["id"] for s in d.statuses])
    assert delivery.values()[0]["metadata"] == {
        "display_phone_number": "15550000001",
        "phone_number_id": other.id,
    }


async def test_contact_endpoint_reports_window_state(sim):
    await sim.inbound(type="text", text="hi", referral=REFERRAL)
    status, info = await sim.control("GET", f"/_sim/contacts/{sim.contact}")
    assert status == 200
    window = info["windows"][sim.phone_number_id]
    assert window["service_window_open"] is True
    assert window["pending_referral_at"] is not None
    await sim.advance(DAY)
    _, info = await sim.control("GET", f"/_sim/contacts/{sim.contact}")
    assert info["windows"][sim.phone_number_id]["service_window_open"] is False
    assert info["name"] == "Sheena"


async def test_mark_as_read_and_typing_indicator_are_recorded(sim):
    played = await sim.inbound(type="text", text="hi")
    status, body = await sim.send({"status": "read", "message_id": played["wamid"]})
    assert (status, body) == (200, {"success": True})
    status, body = await sim.send(
        {"status": "read", "message_id": played["wamid"], "typing_indicator": {"type": "text"}}
    )
    assert (status, body) == (200, {"success": True})
    _, receipts = await sim.control("GET", f"/_sim/read_receipts?contact={sim.contact}")
    assert [(r["message_id"], r["typing_indicator"]) for r in receipts["read_receipts"]] == [
        (played["wamid"], False),
        (played["wamid"], True),
    ]
    _, others = await sim.control("GET", "/_sim/read_receipts?contact=19999999999")
    assert others["read_receipts"] == []


async def test_mark_as_read_of_unknown_message_is_rejected(sim):
    status, body = await sim.send({"status": "read", "message_id": "wamid.unknown"})
    assert status == 400
    assert body["error"]["code"] == 100
    assert "message_id" in body["error"]["error_data"]["details"]
    status, body = await sim.send({"status": "delivered", "message_id": "wamid.unknown"})
    assert body["error"]["code"] == 131009


async def test_clock_control(sim):
    _, before = await sim.control("GET", "/_sim/clock")
    _, after = await sim.control("POST", "/_sim/clock", {"advance_seconds": 3600})
    assert 3600 <= after["now"] - before["now"] < 3605
    _, fixed = await sim.control("POST", "/_sim/clock", {"set": 1_750_000_000})
    assert int(fixed["now"]) in (1_750_000_000, 1_750_000_001)
    status, error = await sim.control("POST", "/_sim/clock", {"advance_seconds": -1})
    assert status == 400 and "advance_seconds" in error["error"]
    played = await sim.inbound(type="text", text="hi")
    assert played["timestamp"].startswith("17500000")
