"""Template sends (132000/132001/132012/132015/132016/132018/131008, rendering) and the
paged ``message_templates`` listing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

FOLLOW_UP_EN = (
    "Hi Sheena, I'd like to follow up on our previous conversation. Is there anything else you "
    "need help with? Let me know and I'll be happy to help."
)
FOLLOW_UP_IT = (
    "Ciao Sheena, vorrei seguire la nostra conversazione precedente. C'è altro con cui hai "
    "bisogno di assistenza? Fammi sapere e sarò felice di aiutarti."
)


def template(name: str, language: str = "en", components: list[Any] | None = None) -> dict:
    body: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components is not None:
        body["components"] = components
    return {"type": "template", "template": body}


def body_params(*values: str) -> dict:
    return {"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}


def named(**values: str) -> dict:
    return {
        "type": "body",
        "parameters": [{"type": "text", "parameter_name": k, "text": v} for k, v in values.items()],
    }


IMAGE_HEADER = {
    "type": "header",
    "parameters": [{"type": "image", "image": {"link": "https://shop.example.com/s.jpg"}}],
}
URL_BUTTON = {
    "type": "button",
    "sub_type": "url",
    "index": "0",
    "parameters": [{"type": "text", "text": "summer25"}],
}
SALE_BODY = body_params("Sheena", "25%")


@pytest.mark.parametrize("language, expected", [("en", FOLLOW_UP_EN), ("it", FOLLOW_UP_IT)])
async def test_rendered_text_is_recorded(sim, language: str, expected: str):
    wamid = await sim.send_ok(template("follow_up", language, [body_params("Sheena")]))
    record = await sim.message(wamid)
    assert record["rendered_text"] == expected
    assert record["type"] == "template"
    assert record["payload"]["template"]["name"] == "follow_up"


async def test_template_response_carries_message_status(sim):
    status, body = await sim.send(template("follow_up", "en", [body_params("Sheena")]))
    assert status == 200
    assert body["messages"][0]["message_status"] == "accepted"


@pytest.mark.parametrize(
    ("message", "code", "detail"),
    [
        (template("no_such_template"), 132001, "does not exist"),
        (template("follow_up", "de", [body_params("x")]), 132001, "available: it, en"),
        (template("shipping_update", "en", [body_params("#1", "Mon")]), 132015, "PAUSED"),
        (template("spring_promo", "en", [body_params("Ann")]), 132016, "DISABLED"),
        (template("follow_up", "en"), 132000, "expects 1 parameter(s), got 0"),
        (template("follow_up", "en", [body_params("a", "b")]), 132000, "got 2"),
        (
            template("follow_up", "en", [{"type": "body", "parameters": [{"type": "text"}]}]),
            131008,
            "parameters[0].text",
        ),
        (
            template(
                "follow_up",
                "en",
                [
                    {
                        "type": "body",
                        "parameters": [{"type": "image", "image": {"link": "https://x/y.jpg"}}],
                    }
                ],
            ),
            132012,
            "type",
        ),
        (template("follow_up", "en", [body_params("line\nbreak")]), 132018, "newlines"),
        (template("follow_up", "en", [body_params("x" * 1000)]), 132005, "1024"),
        (template("follow_up", "en", [body_params("x"), IMAGE_HEADER]), 132000, "header"),
        (
            template("follow_up", "en", [body_params("x"), {"type": "footer"}]),
            131009,
            "components[1].type",
        ),
        ({"type": "template", "template": {"name": "follow_up"}}, 131008, "template.language"),
        # summer_sale: image header, 2 body params, URL button with {{1}} suffix
        (template("summer_sale", "en", [SALE_BODY, URL_BUTTON]), 131008, "image header"),
        (
            template(
                "summer_sale",
                "en",
                [
                    {"type": "header", "parameters": [{"type": "text", "text": "Hi"}]},
                    SALE_BODY,
                    URL_BUTTON,
                ],
            ),
            132012,
            "header is IMAGE",
        ),
        (template("summer_sale", "en", [IMAGE_HEADER, SALE_BODY]), 131008, "button index 0"),
        (
            template(
                "summer_sale",
                "en",
                [IMAGE_HEADER, SALE_BODY, {**URL_BUTTON, "sub_type": "quick_reply"}],
            ),
            132012,
            "sub_type",
        ),
        (
            template("summer_sale", "en", [IMAGE_HEADER, SALE_BODY, {**URL_BUTTON, "index": "5"}]),
            131009,
            "index",
        ),
        (
            template(
                "summer_sale", "en", [IMAGE_HEADER, SALE_BODY, {**URL_BUTTON, "parameters": []}]
            ),
            131008,
            "parameters[0]",
        ),
        (
            template(
                "summer_sale",
                "en",
                [
                    {"type": "header", "parameters": [{"type": "image", "image": {"id": "404"}}]},
                    SALE_BODY,
                    URL_BUTTON,
                ],
            ),
            100,
            "image.id",
        ),
        # appointment_reminder: NAMED parameters
        (
            template("appointment_reminder", "en", [named(first_name="A", date="May 3")]),
            132000,
            "expects 3",
        ),
        (
            template(
                "appointment_reminder", "en", [named(first_name="A", date="May 3", hour="10")]
            ),
            132000,
            "'hour'",
        ),
        (
            template("appointment_reminder", "en", [body_params("A", "B", "C")]),
            131008,
            "parameter_name",
        ),
        # login_code: OTP button needs the code as a url button parameter
        (template("login_code", "en", [body_params("123456")]), 131008, "OTP"),
    ],
)
async def test_template_errors(sim, message: dict, code: int, detail: str):
    status, body = await sim.send(message)
    assert status in (400, 404), body
    assert body["error"]["code"] == code, body
    assert detail in body["error"]["error_data"]["details"], body["error"]["error_data"]


async def test_template_error_messages_use_meta_titles(sim):
    _, missing = await sim.send(template("no_such_template"))
    assert missing["error"]["message"] == (
        "(#132001) Template name does not exist in the translation"
    )
    _, count = await sim.send(template("follow_up", "en"))
    assert count["error"]["message"] == (
        "(#132000) Number of parameters does not match the expected number of params"
    )


async def test_marketing_template_with_header_and_url_button_renders(sim):
    wamid = await sim.send_ok(template("summer_sale", "en", [IMAGE_HEADER, SALE_BODY, URL_BUTTON]))
    record = await sim.message(wamid)
    assert record["rendered_text"] == (
        "Hi Sheena, our summer sale is on: 25% off everything until Sunday.\n"
        "Reply STOP to unsubscribe"
    )
    rendered = record["rendered"]
    assert rendered["header"] == {
        "format": "IMAGE",
        "image": {"link": "https://shop.example.com/s.jpg"},
    }
    assert rendered["buttons"][0] == {
        "type": "URL",
        "text": "Shop now",
        "url": "https://shop.example.com/sale/summer25",
    }
    assert rendered["buttons"][1]["type"] == "QUICK_REPLY"


async def test_named_parameters_render_in_any_order(sim):
    wamid = await sim.send_ok(
        template(
            "appointment_reminder", "en", [named(time="10:30", first_name="Sheena", date="May 3")]
        )
    )
    record = await sim.message(wamid)
    assert record["rendered_text"] == (
        "Appointment reminder\nHi Sheena, your appointment is on May 3 at 10:30."
    )


async def test_currency_and_date_time_parameters_use_fallback_value(sim):
    await sim.control(
        "POST",
        "/_sim/templates",
        {
            "name": "invoice",
            "language": "en_US",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "You owe {{1}} by {{2}}."}],
        },
    )
    wamid = await sim.send_ok(
        template(
            "invoice",
            "en_US",
            [
                {
                    "type": "body",
                    "parameters": [
                        {
                            "type": "currency",
                            "currency": {
                                "fallback_value": "$10.50",
                                "code": "USD",
                                "amount_1000": 10500,
                            },
                        },
                        {"type": "date_time", "date_time": {"fallback_value": "May 3, 2026"}},
                    ],
                }
            ],
        )
    )
    assert (await sim.message(wamid))["rendered_text"] == "You owe $10.50 by May 3, 2026."


async def test_authentication_template_is_billed_as_authentication(sim):
    wamid = await sim.send_ok(
        template(
            "login_code",
            "en",
            [
                body_params("123456"),
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": 0,
                    "parameters": [{"type": "text", "text": "123456"}],
                },
            ],
        )
    )
    (sent, *_) = await sim.sink.wait_statuses(wamid, 1)
    assert sent["pricing"] == {
        "billable": True,
        "pricing_model": "PMP",
        "category": "authentication",
        "type": "regular",
    }


async def test_template_status_change_sends_webhook_and_blocks_sends(sim):
    status, result = await sim.control(
        "POST",
        "/_sim/templates",
        {
            "name": "follow_up",
            "language": "en",
            "status": "PAUSED",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}"}],
            "reason": "LOW_QUALITY",
        },
    )
    assert status == 200
    assert result["webhook_status"] == 200
    change = sim.sink.deliveries[-1].payload["entry"][0]["changes"][0]
    assert change["field"] == "message_template_status_update"
    assert change["value"]["event"] == "PAUSED"
    assert change["value"]["message_template_name"] == "follow_up"
    assert change["value"]["reason"] == "LOW_QUALITY"
    _, body = await sim.send(template("follow_up", "en", [body_params("x")]))
    assert body["error"]["code"] == 132015
    await sim.control("POST", "/_sim/reset")
    assert (await sim.send(template("follow_up", "en", [body_params("x")])))[0] == 200


# --- listing -------------------------------------------------------------------------------


async def list_page(sim, url: str) -> dict:
    status, body = await sim.graph("GET", url)
    assert status == 200, body
    return body


async def test_listing_pages_through_all_templates(sim):
    names: list[tuple[str, str]] = []
    url = f"/v23.0/{sim.waba_id}/message_templates?limit=2"
    pages = 0
    while url:
        page = await list_page(sim, url)
        pages += 1
        assert len(page["data"]) <= 2
        names += [(t["name"], t["language"]) for t in page["data"]]
        assert set(page["paging"]["cursors"]) == {"before", "after"}
        next_url = page["paging"].get("next")
        if next_url:
            parts = urlsplit(next_url)
            assert parts.scheme == "http" and parts.netloc  # absolute
            url = f"{parts.path}?{parts.query}"
        else:
            url = ""
    expected = [(t.name, t.language) for t in sim.engine.templates.all()]
    assert names == expected
    assert pages == (len(expected) + 1) // 2


async def test_listing_filters_status_and_fields(sim):
    page = await list_page(
        sim, f"/v21.0/{sim.waba_id}/message_templates?status=APPROVED&fields=name,status"
    )
    assert page["data"]
    assert all(t["status"] == "APPROVED" for t in page["data"])
    assert all(set(t) == {"name", "status", "id"} for t in page["data"])
    assert "next" not in page["paging"]
    full = await list_page(sim, f"/v21.0/{sim.waba_id}/message_templates?limit=1")
    first = full["data"][0]
    assert set(first) == {
        "name",
        "language",
        "status",
        "category",
        "id",
        "parameter_format",
        "components",
    }


async def test_listing_previous_page_via_before_cursor(sim):
    first = await list_page(sim, f"/v21.0/{sim.waba_id}/message_templates?limit=2")
    after = first["paging"]["cursors"]["after"]
    second = await list_page(sim, f"/v21.0/{sim.waba_id}/message_templates?limit=2&after={after}")
    previous = urlsplit(second["paging"]["previous"])
    back = await list_page(sim, f"{previous.path}?{previous.query}")
    assert back["data"] == first["data"]


async def test_listing_requires_bearer_and_known_waba(sim):
    status, body = await sim.graph("GET", f"/v21.0/{sim.waba_id}/message_templates", token=None)
    assert status == 401 and body["error"]["code"] == 190
    status, body = await sim.graph("GET", "/v21.0/999/message_templates")
    assert status == 400 and body["error"]["code"] == 100
    status, body = await sim.graph("GET", f"/v21.0/{sim.waba_id}/message_templates?limit=0")
    assert status == 400 and "limit" in body["error"]["error_data"]["details"]


async def test_templates_file_replaces_defaults(make_sim, tmp_path):
    path = tmp_path / "templates.yaml"
    path.write_text(
        "templates:\n"
        "  - name: hello\n    language: en_US\n    category: MARKETING\n"
        "    components:\n      - type: BODY\n        text: 'Hello {{1}}!'\n"
    )
    sim = await make_sim(templates_path=path)
    page = await list_page(sim, f"/v21.0/{sim.waba_id}/message_templates")
    assert [(t["name"], t["status"], t["parameter_format"]) for t in page["data"]] == [
        ("hello", "APPROVED", "POSITIONAL")
    ]
    wamid = await sim.send_ok(template("hello", "en_US", [body_params("Bob")]))
    assert (await sim.message(wamid))["rendered_text"] == "Hello Bob!"
