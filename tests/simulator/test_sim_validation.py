"""Send validation: every documented limit, at the boundary (accepted) and past it (rejected
with Meta's code and a details string naming the field)."""

from __future__ import annotations

from typing import Any

import pytest

INVALID = 131009
MISSING = 131008
PARAM = 100


def text(n: int, char: str = "a") -> str:
    return char * n


def buttons_msg(buttons: list[dict[str, Any]] | None = None, **interactive: Any) -> dict[str, Any]:
    if buttons is None:
        buttons = [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]
    body: dict[str, Any] = {
        "type": "button",
        "body": {"text": "Pick one"},
        "action": {"buttons": buttons},
    }
    body.update(interactive)
    return {"type": "interactive", "interactive": body}


def reply(button_id: str, title: str) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": button_id, "title": title}}


def row(row_id: str, title: str = "Row", description: str | None = None) -> dict[str, Any]:
    result = {"id": row_id, "title": title}
    if description is not None:
        result["description"] = description
    return result


def list_msg(
    sections: list[dict[str, Any]] | None = None, button: str = "Choose", **interactive: Any
) -> dict[str, Any]:
    if sections is None:
        sections = [{"title": "Section", "rows": [row("r1")]}]
    body: dict[str, Any] = {
        "type": "list",
        "body": {"text": "Pick a row"},
        "action": {"button": button, "sections": sections},
    }
    body.update(interactive)
    return {"type": "interactive", "interactive": body}


def cta_msg(
    display_text: str = "Open", url: str = "https://example.com/x", name: str = "cta_url"
) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {
            "type": "cta_url",
            "body": {"text": "See the site"},
            "action": {"name": name, "parameters": {"display_text": display_text, "url": url}},
        },
    }


def flow_msg(**parameters: Any) -> dict[str, Any]:
    params = {"flow_message_version": "3", "flow_id": "123", "flow_cta": "Book"}
    params.update(parameters)
    params = {k: v for k, v in params.items() if v is not None}
    return {
        "type": "interactive",
        "interactive": {
            "type": "flow",
            "body": {"text": "Book now"},
            "action": {"name": "flow", "parameters": params},
        },
    }


def rows(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [row(f"{prefix}{i}") for i in range(n)]


CASES: list[tuple[str, dict[str, Any], int | None, str]] = [
    # text
    ("text ok at 4096", {"type": "text", "text": {"body": text(4096)}}, None, ""),
    ("text too long", {"type": "text", "text": {"body": text(4097)}}, INVALID, "text.body"),
    ("text empty", {"type": "text", "text": {"body": ""}}, INVALID, "text.body"),
    ("text body missing", {"type": "text", "text": {}}, MISSING, "text.body"),
    ("text object missing", {"type": "text"}, MISSING, "text"),
    ("default type is text", {"text": {"body": "hi"}}, None, ""),
    (
        "preview_url not bool",
        {"type": "text", "text": {"body": "x", "preview_url": "yes"}},
        PARAM,
        "text.preview_url",
    ),
    # top level
    ("unknown type", {"type": "carousel", "carousel": {}}, PARAM, "type"),
    (
        "group recipient",
        {"recipient_type": "group", "type": "text", "text": {"body": "x"}},
        INVALID,
        "recipient_type",
    ),
    ("bad phone", {"to": "not-a-number", "type": "text", "text": {"body": "x"}}, INVALID, "to"),
    ("to missing", {"to": None, "type": "text", "text": {"body": "x"}}, MISSING, "to"),
    (
        "to is sender",
        {"to": "+1 555-078-3881", "type": "text", "text": {"body": "x"}},
        131021,
        "to",
    ),
    (
        "callback data too long",
        {"type": "text", "text": {"body": "x"}, "biz_opaque_callback_data": text(513)},
        INVALID,
        "biz_opaque_callback_data",
    ),
    # media
    ("image link ok", {"type": "image", "image": {"link": "https://x.example/a.jpg"}}, None, ""),
    (
        "image id and link",
        {"type": "image", "image": {"id": "1", "link": "https://x/a.jpg"}},
        INVALID,
        "image",
    ),
    ("image neither", {"type": "image", "image": {"caption": "x"}}, MISSING, "image.id"),
    (
        "image link not http",
        {"type": "image", "image": {"link": "ftp://x/a.jpg"}},
        INVALID,
        "image.link",
    ),
    ("image unknown id", {"type": "image", "image": {"id": "999"}}, PARAM, "image.id"),
    (
        "image caption 1024",
        {"type": "image", "image": {"link": "https://x/a", "caption": text(1024)}},
        None,
        "",
    ),
    (
        "image caption 1025",
        {"type": "image", "image": {"link": "https://x/a", "caption": text(1025)}},
        INVALID,
        "image.caption",
    ),
    (
        "audio caption",
        {"type": "audio", "audio": {"link": "https://x/a", "caption": "c"}},
        INVALID,
        "audio.caption",
    ),
    (
        "sticker caption",
        {"type": "sticker", "sticker": {"link": "https://x/a", "caption": "c"}},
        INVALID,
        "sticker.caption",
    ),
    (
        "document filename ok",
        {
            "type": "document",
            "document": {"link": "https://x/a.pdf", "filename": "a.pdf", "caption": "c"},
        },
        None,
        "",
    ),
    (
        "image filename",
        {"type": "image", "image": {"link": "https://x/a", "filename": "a"}},
        INVALID,
        "image.filename",
    ),
    (
        "video caption 1025",
        {"type": "video", "video": {"link": "https://x/a", "caption": text(1025)}},
        INVALID,
        "video.caption",
    ),
    # reply buttons
    (
        "buttons ok at limits",
        buttons_msg(
            [reply(text(256, "i"), text(20, "t")), reply("b", "B"), reply("c", "C")],
            header={"type": "text", "text": text(60)},
            footer={"text": text(60)},
            body={"text": text(1024)},
        ),
        None,
        "",
    ),
    ("buttons body 1025", buttons_msg(body={"text": text(1025)}), INVALID, "interactive.body.text"),
    ("buttons body missing", buttons_msg(body=None), MISSING, "interactive.body"),
    ("no buttons", buttons_msg([]), INVALID, "interactive.action.buttons"),
    (
        "four buttons",
        buttons_msg([reply(str(i), str(i)) for i in range(4)]),
        INVALID,
        "interactive.action.buttons",
    ),
    (
        "button title 21",
        buttons_msg([reply("a", text(21))]),
        INVALID,
        "interactive.action.buttons[0].reply.title",
    ),
    (
        "button title empty",
        buttons_msg([reply("a", "")]),
        INVALID,
        "interactive.action.buttons[0].reply.title",
    ),
    (
        "button id 257",
        buttons_msg([reply(text(257), "A")]),
        INVALID,
        "interactive.action.buttons[0].reply.id",
    ),
    (
        "duplicate titles",
        buttons_msg([reply("a", "Same"), reply("b", "Same")]),
        INVALID,
        "interactive.action.buttons[1].reply.title",
    ),
    (
        "duplicate ids",
        buttons_msg([reply("a", "One"), reply("a", "Two")]),
        INVALID,
        "interactive.action.buttons[1].reply.id",
    ),
    (
        "header text 61",
        buttons_msg(header={"type": "text", "text": text(61)}),
        INVALID,
        "interactive.header.text",
    ),
    ("footer 61", buttons_msg(footer={"text": text(61)}), INVALID, "interactive.footer.text"),
    (
        "header image ok",
        buttons_msg(header={"type": "image", "image": {"link": "https://x/i"}}),
        None,
        "",
    ),
    (
        "button type url",
        buttons_msg([{"type": "url", "reply": {"id": "a", "title": "A"}}]),
        INVALID,
        "interactive.action.buttons[0].type",
    ),
    (
        "unknown interactive type",
        {
            "type": "interactive",
            "interactive": {"type": "carousel", "body": {"text": "x"}, "action": {}},
        },
        INVALID,
        "interactive.type",
    ),
    # lists
    (
        "list ok at limits",
        list_msg(
            [
                {"title": text(24), "rows": [row(text(200, "i"), text(24), text(72))] + rows(4)},
                {"title": "Two", "rows": rows(5, "s")},
            ],
            button=text(20),
            header={"type": "text", "text": text(60)},
        ),
        None,
        "",
    ),
    ("list button 21", list_msg(button=text(21)), INVALID, "interactive.action.button"),
    ("list no sections", list_msg([]), INVALID, "interactive.action.sections"),
    (
        "list 11 sections",
        list_msg([{"title": f"S{i}", "rows": [row(f"r{i}")]} for i in range(11)]),
        INVALID,
        "interactive.action.sections",
    ),
    (
        "list 11 rows",
        list_msg([{"title": "A", "rows": rows(6)}, {"title": "B", "rows": rows(5, "s")}]),
        INVALID,
        "interactive.action.sections",
    ),
    (
        "row id 201",
        list_msg([{"rows": [row(text(201))]}]),
        INVALID,
        "interactive.action.sections[0].rows[0].id",
    ),
    (
        "row ids unique across sections",
        list_msg([{"title": "A", "rows": [row("x")]}, {"title": "B", "rows": [row("x")]}]),
        INVALID,
        "interactive.action.sections[1].rows[0].id",
    ),
    (
        "row title 25",
        list_msg([{"rows": [row("a", text(25))]}]),
        INVALID,
        "interactive.action.sections[0].rows[0].title",
    ),
    (
        "row description 73",
        list_msg([{"rows": [row("a", "A", text(73))]}]),
        INVALID,
        "interactive.action.sections[0].rows[0].description",
    ),
    (
        "section title 25",
        list_msg([{"title": text(25), "rows": [row("a")]}]),
        INVALID,
        "interactive.action.sections[0].title",
    ),
    (
        "multi-section needs titles",
        list_msg([{"title": "A", "rows": [row("a")]}, {"rows": [row("b")]}]),
        MISSING,
        "interactive.action.sections[1].title",
    ),
    (
        "list media header",
        list_msg(header={"type": "image", "image": {"link": "https://x"}}),
        INVALID,
        "interactive.header.type",
    ),
    # cta_url
    ("cta ok", cta_msg(display_text=text(20)), None, ""),
    (
        "cta display 21",
        cta_msg(display_text=text(21)),
        INVALID,
        "interactive.action.parameters.display_text",
    ),
    (
        "cta url not http",
        cta_msg(url="www.example.com"),
        INVALID,
        "interactive.action.parameters.url",
    ),
    ("cta wrong name", cta_msg(name="cta"), INVALID, "interactive.action.name"),
    # location request, flow, address
    (
        "location request ok",
        {
            "type": "interactive",
            "interactive": {
                "type": "location_request_message",
                "body": {"text": "Where are you?"},
                "action": {"name": "send_location"},
            },
        },
        None,
        "",
    ),
    (
        "location request wrong action",
        {
            "type": "interactive",
            "interactive": {
                "type": "location_request_message",
                "body": {"text": "Where?"},
                "action": {"name": "location"},
            },
        },
        INVALID,
        "interactive.action.name",
    ),
    ("flow ok", flow_msg(flow_action="navigate"), None, ""),
    (
        "flow without version",
        flow_msg(flow_message_version=None),
        MISSING,
        "interactive.action.parameters.flow_message_version",
    ),
    ("flow id and name", flow_msg(flow_name="booking"), INVALID, "interactive.action.parameters"),
    (
        "flow bad action",
        flow_msg(flow_action="jump"),
        INVALID,
        "interactive.action.parameters.flow_action",
    ),
    (
        "address ok",
        {
            "type": "interactive",
            "interactive": {
                "type": "address_message",
                "body": {"text": "Your address?"},
                "action": {"name": "address_message", "parameters": {"country": "IN"}},
            },
        },
        None,
        "",
    ),
    (
        "address without parameters",
        {
            "type": "interactive",
            "interactive": {
                "type": "address_message",
                "body": {"text": "Your address?"},
                "action": {"name": "address_message"},
            },
        },
        MISSING,
        "interactive.action.parameters",
    ),
    # location, contacts, reaction
    (
        "location ok",
        {"type": "location", "location": {"latitude": 45.4, "longitude": 9.2, "name": "Duomo"}},
        None,
        "",
    ),
    (
        "latitude 91",
        {"type": "location", "location": {"latitude": 91, "longitude": 9}},
        INVALID,
        "location.latitude",
    ),
    (
        "longitude missing",
        {"type": "location", "location": {"latitude": 1}},
        MISSING,
        "location.longitude",
    ),
    (
        "contacts ok",
        {
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": "Ann Lee", "first_name": "Ann"},
                    "phones": [{"phone": "+1 650 555 0000", "type": "CELL"}],
                }
            ],
        },
        None,
        "",
    ),
    ("contacts empty", {"type": "contacts", "contacts": []}, INVALID, "contacts"),
    (
        "contact without formatted_name",
        {"type": "contacts", "contacts": [{"name": {"first_name": "Ann"}}]},
        MISSING,
        "contacts[0].name.formatted_name",
    ),
    (
        "reaction ok",
        {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}},
        None,
        "",
    ),
    (
        "reaction removal ok",
        {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": ""}},
        None,
        "",
    ),
    (
        "reaction without message_id",
        {"type": "reaction", "reaction": {"emoji": "👍"}},
        MISSING,
        "reaction.message_id",
    ),
    (
        "reaction with text",
        {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "ok"}},
        INVALID,
        "reaction.emoji",
    ),
]


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [pytest.param(m, c, f, id=name) for name, m, c, f in CASES],
)
async def test_send_validation(sim, message: dict[str, Any], code: int | None, field: str):
    status, body = await sim.send(message)
    if code is None:
        assert status == 200, body
        assert body["messages"][0]["id"].startswith("wamid.")
        return
    assert status in (400, 404), body
    error = body["error"]
    assert error["code"] == code, error
    assert error["type"] == "OAuthException"
    assert error["message"].startswith(f"(#{code}) ")
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert field in error["error_data"]["details"], error["error_data"]["details"]
    assert error["fbtrace_id"].startswith("A")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ([], PARAM, "JSON object"),
        ({"to": "16505551234", "type": "text", "text": {"body": "x"}}, PARAM, "messaging_product"),
        (
            {"messaging_product": "sms", "to": "16505551234", "text": {"body": "x"}},
            PARAM,
            "messaging_product",
        ),
    ],
)
async def test_top_level_errors(sim, body: Any, code: int, field: str):
    status, answer = await sim.graph("POST", f"/v21.0/{sim.phone_number_id}/messages", json=body)
    assert status == 400
    assert answer["error"]["code"] == code
    assert field in answer["error"]["error_data"]["details"]


async def test_invalid_json_body(sim):
    status, answer = await sim.graph(
        "POST",
        f"/v21.0/{sim.phone_number_id}/messages",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert answer["error"]["code"] == PARAM


async def test_rejections_are_counted_by_code(sim):
    await sim.send({"type": "text", "text": {"body": ""}})
    await sim.send({"type": "text", "text": {}})
    await sim.send({"type": "text", "text": {"body": "fine"}})
    _, stats = await sim.control("GET", "/_sim/stats")
    assert stats["rejected"] == {"131009": 1, "131008": 1}
    assert stats["sends_accepted"] == 1
    assert stats["requests"]["graph.messages"] == 3


async def test_success_response_shape(sim):
    status, body = await sim.send(
        {"to": "+1 (650) 555-1234", "type": "text", "text": {"body": "hi"}}
    )
    assert status == 200
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 (650) 555-1234", "wa_id": "16505551234"}]
    first, second = body["messages"][0]["id"], await sim.send_text()
    assert first != second
    assert "message_status" not in body["messages"][0]
