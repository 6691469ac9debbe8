"""Rules for turning Rasa responses into WhatsApp Cloud API messages (whatsapp_core.outbound)."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from whatsapp_core.outbound import (
    DEFAULT_CHOICE_PROMPT,
    DEFAULT_LIST_BUTTON,
    InvalidOutboundMessage,
    MenuOption,
    NumberedMenu,
    OutboundKind,
    OutboundMessage,
    build_messages,
)


def buttons(*titles: str, payload_len: int | None = None) -> list[dict[str, str]]:
    return [
        {"title": t, "payload": ("p" * payload_len if payload_len else f"/pick_{i}")}
        for i, t in enumerate(titles)
    ]


def only(response: dict) -> OutboundMessage:
    messages = build_messages(response)
    assert len(messages) == 1, messages
    return messages[0]


def invalid(response: dict) -> InvalidOutboundMessage:
    with pytest.raises(InvalidOutboundMessage) as caught:
        build_messages(response)
    return caught.value


def custom(obj: dict) -> dict:
    return {"custom": {"whatsapp": obj}}


def interactive(**fields) -> dict:
    return {"type": "interactive", "interactive": fields}


def texts(messages: list[OutboundMessage]) -> list[str]:
    return [m.body["text"]["body"] for m in messages]


# ---------------------------------------------------------------- text


def test_short_text_is_one_text_message_without_preview():
    message = only({"text": "Hello there"})
    assert message.kind is OutboundKind.TEXT
    assert message.body == {"type": "text", "text": {"body": "Hello there"}}


def test_preview_url_only_when_text_has_an_http_url():
    assert only({"text": "see https://example.com/x"}).body["text"]["preview_url"] is True
    assert only({"text": "see HTTP://example.com"}).body["text"]["preview_url"] is True
    assert "preview_url" not in only({"text": "see example.com or ftp://x"}).body["text"]


def test_text_of_4096_characters_is_not_split():
    assert len(build_messages({"text": "a" * 4096})) == 1


def test_4097_characters_split_on_a_sentence_boundary():
    sentence = "This is a sentence. "
    text = (sentence * 205)[:4097]
    parts = texts(build_messages({"text": text}))
    assert len(parts) == 2
    assert all(len(p) <= 4096 for p in parts)
    assert parts[0].endswith("sentence.")
    assert " ".join(parts) == text.strip()


def test_split_prefers_paragraph_then_line_boundaries():
    first, second = "A" * 10 + " word. " + "b" * 2000, "c" * 3000
    parts = texts(build_messages({"text": f"{first}\n\n{second}"}))
    assert parts == [first, second]
    parts = texts(build_messages({"text": f"{first}\n{second}"}))
    assert parts == [first, second]


def test_split_on_word_boundary_when_no_sentence_ends():
    text = ("word " * 1000).strip()  # 4999 characters
    parts = texts(build_messages({"text": text}))
    assert all(len(p) <= 4096 for p in parts)
    assert all(p.startswith("word") and p.endswith("word") for p in parts)
    assert " ".join(parts) == text


def test_single_word_longer_than_limit_is_cut_mid_word():
    parts = texts(build_messages({"text": "x" * 5000}))
    assert [len(p) for p in parts] == [4096, 904]


@given(st.text(alphabet=st.sampled_from("ab .\n!?"), min_size=0, max_size=9000))
def test_split_never_exceeds_limit_and_keeps_every_word(text):
    parts = texts(build_messages({"text": text}))
    assert all(0 < len(p) <= 4096 for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


# ---------------------------------------------------------------- choices


def test_three_buttons_with_20_character_titles_become_reply_buttons():
    message = only({"text": "Pick one", "buttons": buttons("a" * 20, "b", "c")})
    assert message.kind is OutboundKind.INTERACTIVE_BUTTONS
    interactive_ = message.body["interactive"]
    assert interactive_["type"] == "button"
    assert interactive_["body"] == {"text": "Pick one"}
    assert [b["reply"]["title"] for b in interactive_["action"]["buttons"]] == ["a" * 20, "b", "c"]
    assert all(b["type"] == "reply" for b in interactive_["action"]["buttons"])


def test_21_character_title_becomes_a_list():
    message = only({"text": "Pick", "buttons": buttons("a" * 21)})
    assert message.kind is OutboundKind.INTERACTIVE_LIST
    action = message.body["interactive"]["action"]
    assert action["button"] == DEFAULT_LIST_BUTTON
    assert action["sections"][0]["rows"] == [{"id": "/pick_0", "title": "a" * 21}]


def test_24_character_title_is_a_list_and_25_is_a_menu():
    assert only({"text": "P", "buttons": buttons("a" * 24)}).kind is OutboundKind.INTERACTIVE_LIST
    assert only({"text": "P", "buttons": buttons("a" * 25)}).kind is OutboundKind.MENU


def test_four_buttons_become_a_list():
    message = only({"text": "Pick", "buttons": buttons("a", "b", "c", "d")})
    assert message.kind is OutboundKind.INTERACTIVE_LIST
    assert len(message.body["interactive"]["action"]["sections"][0]["rows"]) == 4


def test_ten_options_are_a_list_and_eleven_a_menu():
    ten = buttons(*[f"opt {i}" for i in range(10)])
    assert only({"text": "P", "buttons": ten}).kind is OutboundKind.INTERACTIVE_LIST
    eleven = buttons(*[f"opt {i}" for i in range(11)])
    assert only({"text": "P", "buttons": eleven}).kind is OutboundKind.MENU


def test_duplicate_titles_cannot_be_reply_buttons():
    message = only({"text": "P", "buttons": buttons("Same", "Same")})
    assert message.kind is OutboundKind.INTERACTIVE_LIST


def test_payload_length_edges():
    assert only({"buttons": buttons("a", payload_len=200)}).kind is OutboundKind.INTERACTIVE_BUTTONS
    assert only({"buttons": buttons("a", payload_len=256)}).kind is OutboundKind.INTERACTIVE_BUTTONS
    assert only({"buttons": buttons("a" * 21, payload_len=200)}).kind is (
        OutboundKind.INTERACTIVE_LIST
    )
    assert only({"buttons": buttons("a" * 21, payload_len=201)}).kind is OutboundKind.MENU
    assert only({"buttons": buttons("a", payload_len=257)}).kind is OutboundKind.MENU
    assert only({"buttons": buttons("a", "b", payload_len=10)}).kind is OutboundKind.MENU


def test_descriptions_go_to_list_rows_within_72_characters():
    choices = [{"title": "A", "payload": "/a", "description": "d" * 72}]
    message = only({"text": "P", "buttons": choices})
    assert message.kind is OutboundKind.INTERACTIVE_LIST
    assert message.body["interactive"]["action"]["sections"][0]["rows"][0]["description"] == (
        "d" * 72
    )
    choices[0]["description"] = "d" * 73
    assert only({"text": "P", "buttons": choices}).kind is OutboundKind.MENU


def test_list_button_label_comes_from_metadata_and_is_limited_to_20():
    response = {"text": "P", "buttons": buttons(*"abcd"), "metadata": {"list_button": "Choose"}}
    assert only(response).body["interactive"]["action"]["button"] == "Choose"
    response["metadata"]["list_button"] = "x" * 21
    assert invalid(response).field == "metadata.list_button"


def test_quick_replies_are_treated_as_buttons_and_take_precedence():
    response = {"text": "P", "quick_replies": buttons("Yes"), "buttons": buttons("Other")}
    message = only(response)
    assert message.body["interactive"]["action"]["buttons"][0]["reply"]["title"] == "Yes"


def test_intent_command_payload_round_trips_verbatim():
    payload = '/choose{"x": 1, "name": "Zoë"}  '
    message = only({"text": "P", "buttons": [{"title": "X", "payload": payload}]})
    reply_id = message.body["interactive"]["action"]["buttons"][0]["reply"]["id"]
    assert reply_id == payload
    wire = json.loads(json.dumps(message.to_payload("15550001111")))
    assert wire["interactive"]["action"]["buttons"][0]["reply"]["id"] == payload


def test_empty_text_with_buttons_gets_the_default_prompt():
    message = only({"text": "", "buttons": buttons("a")})
    assert message.body["interactive"]["body"]["text"] == DEFAULT_CHOICE_PROMPT
    menu = only({"buttons": buttons("a" * 30)})
    assert menu.body["text"]["body"].startswith(DEFAULT_CHOICE_PROMPT + "\n\n1. ")


def test_text_of_1024_is_the_body_and_longer_text_goes_first_as_text():
    assert len(build_messages({"text": "a" * 1024, "buttons": buttons("a")})) == 1
    text = "Intro paragraph here.\n\n" + "x " * 600 + "\n\nWhich one do you want?"
    messages = build_messages({"text": text, "buttons": buttons("a")})
    assert [m.kind for m in messages] == [OutboundKind.TEXT, OutboundKind.INTERACTIVE_BUTTONS]
    body = messages[-1].body["interactive"]["body"]["text"]
    assert body == "Which one do you want?"
    assert messages[0].body["text"]["body"].startswith("Intro paragraph here.")


def test_long_text_before_buttons_keeps_whole_sentences_in_the_body():
    text = "First sentence is long. " * 60 + "Do you agree? Tap below."
    messages = build_messages({"text": text, "buttons": buttons("Yes", "No")})
    body = messages[-1].body["interactive"]["body"]["text"]
    assert len(body) <= 1024 and body.endswith("Tap below.")
    assert body.startswith("First sentence") or body.startswith("Do you agree?")
    assert messages[0].body["text"]["body"].endswith("long.")


@given(st.text(alphabet=st.sampled_from("ab .\n"), min_size=1, max_size=6000))
def test_choice_body_never_exceeds_1024_and_no_word_is_lost(text):
    messages = build_messages({"text": text, "buttons": buttons("Yes")})
    body = messages[-1].body["interactive"]["body"]["text"]
    assert 0 < len(body) <= 1024
    sent = texts(messages[:-1]) + [body]
    if text.strip():
        assert "".join("".join(sent).split()) == "".join(text.split())


def test_menu_lists_numbered_titles_and_carries_the_menu():
    choices = [
        {"title": "A very long option title here", "payload": '/pick{"n": 1}'},
        {"title": "Second", "payload": "/two", "description": "more"},
    ]
    message = only({"text": "Choose:", "buttons": choices})
    assert message.kind is OutboundKind.MENU
    assert message.body["text"]["body"] == (
        "Choose:\n\n1. A very long option title here\n2. Second - more"
    )
    assert message.menu == NumberedMenu(
        (
            MenuOption(1, "A very long option title here", '/pick{"n": 1}'),
            MenuOption(2, "Second", "/two"),
        )
    )


@pytest.mark.parametrize(
    ("reply", "payload"),
    [
        ("2", "/two"),
        (" 2. ", "/two"),
        ("2)", "/two"),
        ("1", "/one"),
        ("4", "/two2"),
        ("second", "/two"),
        ("  SECOND  option ", "/two2"),
        ("3", None),
        ("0", None),
        ("two", None),
        ("2 please", None),
        ("Secon", None),
        ("", None),
    ],
)
def test_menu_resolves_number_or_exact_title(reply, payload):
    menu = NumberedMenu(
        (
            MenuOption(1, "First", "/one"),
            MenuOption(2, "Second", "/two"),
            MenuOption(4, "Second option", "/two2"),
        )
    )
    assert menu.resolve(reply) == payload


def test_long_menu_is_split_and_menu_rides_on_the_last_part():
    response = {"text": "p " * 2100, "buttons": buttons(*[f"option {i}" for i in range(12)])}
    messages = build_messages(response)
    assert [m.kind for m in messages] == [OutboundKind.TEXT, OutboundKind.MENU]
    assert messages[-1].menu is not None and len(messages[-1].menu.options) == 12


@pytest.mark.parametrize(
    ("choices", "field"),
    [
        ([{"title": "", "payload": "/a"}], "buttons[0].title"),
        ([{"title": "A"}], "buttons[0].payload"),
        ([{"title": "A", "payload": ""}], "buttons[0].payload"),
        ([{"title": "Site", "url": "https://x.org"}], "buttons[0].payload"),
        ([{"title": "A", "payload": "/a"}, "B"], "buttons[1]"),
        ("A", "buttons"),
    ],
)
def test_malformed_buttons_are_rejected_with_their_field(choices, field):
    assert invalid({"text": "P", "buttons": choices}).field == field


# ---------------------------------------------------------------- media


def test_image_with_short_text_uses_it_as_caption():
    message = only({"text": "A cat", "image": "https://example.com/cat.jpg"})
    assert message.kind is OutboundKind.IMAGE
    assert message.body == {
        "type": "image",
        "image": {"link": "https://example.com/cat.jpg", "caption": "A cat"},
    }


def test_image_with_text_over_1024_sends_text_first():
    messages = build_messages({"text": "a " * 600, "image": "https://example.com/cat.jpg"})
    assert [m.kind for m in messages] == [OutboundKind.TEXT, OutboundKind.IMAGE]
    assert "caption" not in messages[1].body["image"]


def test_caption_edge_1024_characters():
    message = only({"text": "c" * 1024, "image": "https://example.com/cat.jpg"})
    assert message.body["image"]["caption"] == "c" * 1024


def test_image_must_be_an_http_url():
    assert invalid({"image": "ftp://example.com/cat.jpg"}).field == "image"
    assert invalid({"image": "not a url"}).field == "image"


def test_attachment_url_becomes_a_document_named_after_the_path():
    message = only({"attachment": "https://example.com/files/Price%20List.pdf?v=2"})
    assert message.kind is OutboundKind.DOCUMENT
    assert message.body["document"] == {
        "link": "https://example.com/files/Price%20List.pdf?v=2",
        "filename": "Price List.pdf",
    }


def test_attachment_object_with_filename_caption_and_text():
    attachment = {"link": "https://example.com/a", "filename": "invoice.pdf", "caption": "Yours"}
    messages = build_messages({"text": "Here it is", "attachment": attachment})
    assert [m.kind for m in messages] == [OutboundKind.TEXT, OutboundKind.DOCUMENT]
    assert messages[1].body["document"] == {
        "link": "https://example.com/a",
        "caption": "Yours",
        "filename": "invoice.pdf",
    }


def test_document_takes_the_text_as_caption():
    message = only({"text": "Invoice", "attachment": {"url": "https://example.com/i.pdf"}})
    assert message.body["document"]["caption"] == "Invoice"


def test_video_attachment_is_honoured():
    message = only({"text": "Watch", "attachment": {"url": "https://e.com/v.mp4", "type": "video"}})
    assert message.body == {
        "type": "video",
        "video": {"link": "https://e.com/v.mp4", "caption": "Watch"},
    }


def test_audio_has_no_caption_so_text_goes_separately():
    messages = build_messages(
        {"text": "Listen", "attachment": {"url": "https://e.com/a.ogg", "type": "audio"}}
    )
    assert [m.kind for m in messages] == [OutboundKind.TEXT, OutboundKind.AUDIO]
    assert messages[1].body == {"type": "audio", "audio": {"link": "https://e.com/a.ogg"}}
    bad = {"attachment": {"url": "https://e.com/a.ogg", "type": "audio", "caption": "x"}}
    assert invalid(bad).field == "attachment.caption"


def test_attachment_rules():
    assert invalid({"attachment": {"url": "https://e.com/x", "type": "gif"}}).field == (
        "attachment.type"
    )
    assert invalid({"attachment": {"caption": "x"}}).field == "attachment"
    both = {"attachment": {"url": "https://e.com/x", "id": "123"}}
    assert invalid(both).field == "attachment"
    long_caption = {"attachment": {"url": "https://e.com/x", "caption": "c" * 1025}}
    assert invalid(long_caption).field == "attachment.caption"
    by_id = only({"attachment": {"id": "998877", "type": "image"}})
    assert by_id.body == {"type": "image", "image": {"id": "998877"}}


def test_image_and_buttons_send_buttons_then_uncaptioned_image():
    messages = build_messages(
        {"text": "Like it?", "buttons": buttons("Yes"), "image": "https://e.com/c.jpg"}
    )
    assert [m.kind for m in messages] == [OutboundKind.INTERACTIVE_BUTTONS, OutboundKind.IMAGE]
    assert "caption" not in messages[1].body["image"]


# ---------------------------------------------------------------- elements


def test_elements_are_rendered_as_text_with_their_buttons():
    response = {
        "elements": [
            {"title": "Room", "subtitle": "Sea view", "buttons": buttons("Book")},
            {"title": "Suite"},
        ]
    }
    messages = build_messages(response)
    assert [m.kind for m in messages] == [OutboundKind.INTERACTIVE_BUTTONS, OutboundKind.TEXT]
    assert messages[0].body["interactive"]["body"]["text"] == "*Room*\nSea view"
    assert messages[1].body["text"]["body"] == "*Suite*"


def test_element_without_title_is_rejected():
    assert invalid({"elements": [{"subtitle": "x"}]}).field == "elements[0].title"


# ---------------------------------------------------------------- custom


def test_custom_message_object_is_sent_as_given():
    location = {"type": "location", "location": {"latitude": 52.5, "longitude": 13.4}}
    assert only({"custom": location}).body == location
    assert only(custom(location)).body == location


def test_namespaced_custom_may_hold_several_messages_and_ignores_other_channels():
    reaction = {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}}
    text = {"type": "text", "text": {"body": "hi"}}
    response = {"custom": {"whatsapp": [reaction, text], "slack": {"blocks": []}}}
    assert [m.body for m in build_messages(response)] == [reaction, text]
    assert build_messages({"custom": {"slack": {"blocks": []}}}) == []


def test_custom_body_is_a_copy():
    obj = {"type": "text", "text": {"body": "hi"}}
    message = only({"custom": obj})
    message.body["text"]["body"] = "changed"
    assert obj["text"]["body"] == "hi"


def test_custom_template_has_template_kind():
    template = {"type": "template", "template": {"name": "hello", "language": {"code": "en_US"}}}
    assert only(custom(template)).kind is OutboundKind.TEMPLATE


def test_custom_interactive_buttons_and_list_keep_their_kind():
    button = interactive(
        type="button",
        body={"text": "b"},
        action={"buttons": [{"type": "reply", "reply": {"id": "/a", "title": "A"}}]},
    )
    assert only(custom(button)).kind is OutboundKind.INTERACTIVE_BUTTONS
    rows = [{"id": "/a", "title": "A"}]
    listed = interactive(
        type="list", body={"text": "b"}, action={"button": "Pick", "sections": [{"rows": rows}]}
    )
    assert only(custom(listed)).kind is OutboundKind.INTERACTIVE_LIST


def test_custom_cta_url_location_request_and_flow_are_accepted():
    cta = interactive(
        type="cta_url",
        body={"text": "b" * 1024},
        footer={"text": "f" * 60},
        header={"type": "text", "text": "h" * 60},
        action={
            "name": "cta_url",
            "parameters": {"display_text": "d" * 20, "url": "https://e.com"},
        },
    )
    location = interactive(
        type="location_request_message", body={"text": "Where?"}, action={"name": "send_location"}
    )
    flow = interactive(
        type="flow",
        body={"text": "Sign up"},
        action={
            "name": "flow",
            "parameters": {"flow_message_version": "3", "flow_id": "123", "flow_cta": "Open"},
        },
    )
    for obj in (cta, location, flow):
        assert only(custom(obj)).kind is OutboundKind.CUSTOM


def _cta(**changes) -> dict:
    obj = interactive(
        type="cta_url",
        body={"text": "b"},
        action={"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://e.com"}},
    )
    for path, value in changes.items():
        target = obj["interactive"]
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return obj


def _buttons_obj(*replies: tuple[str, str]) -> dict:
    return interactive(
        type="button",
        body={"text": "b"},
        action={"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in replies]},
    )


def _list_obj(rows: list[dict], button: str = "Pick", sections: int = 1) -> dict:
    return interactive(
        type="list",
        body={"text": "b"},
        action={
            "button": button,
            "sections": [{"title": f"S{n}", "rows": rows} for n in range(sections)]
            if sections > 1
            else [{"rows": rows}],
        },
    )


WA = "custom.whatsapp"
IA = f"{WA}.interactive"


@pytest.mark.parametrize(
    ("obj", "field", "limit"),
    [
        (_cta(body={"text": "b" * 1025}), f"{IA}.body.text", "1024"),
        (_cta(body=None), f"{IA}.body", ""),
        (_cta(footer={"text": "f" * 61}), f"{IA}.footer.text", "60"),
        (_cta(header={"type": "text", "text": "h" * 61}), f"{IA}.header.text", "60"),
        (_cta(header={"type": "sticker"}), f"{IA}.header.type", ""),
        (
            _cta(action__parameters__display_text="d" * 21),
            f"{IA}.action.parameters.display_text",
            "20",
        ),
        (_cta(action__parameters__url="ftp://e.com"), f"{IA}.action.parameters.url", "http"),
        (_cta(action__parameters__url="javascript:alert(1)"), f"{IA}.action.parameters.url", ""),
        (_cta(action__name="url"), f"{IA}.action.name", "cta_url"),
        (_buttons_obj(("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")), f"{IA}.action.buttons", "3"),
        (_buttons_obj(("a", "T" * 21)), f"{IA}.action.buttons[0].reply.title", "20"),
        (_buttons_obj(("a" * 257, "A")), f"{IA}.action.buttons[0].reply.id", "256"),
        (_buttons_obj(("a", "Same"), ("b", "Same")), f"{IA}.action.buttons", "unique"),
        (
            _list_obj([{"id": f"r{i}", "title": "t"} for i in range(11)]),
            f"{IA}.action.sections",
            "10",
        ),
        (
            _list_obj([{"id": f"r{i}", "title": "t"} for i in range(6)], sections=2),
            f"{IA}.action.sections",
            "10",
        ),
        (
            _list_obj([{"id": "r", "title": "t" * 25}]),
            f"{IA}.action.sections[0].rows[0].title",
            "24",
        ),
        (
            _list_obj([{"id": "r" * 201, "title": "t"}]),
            f"{IA}.action.sections[0].rows[0].id",
            "200",
        ),
        (
            _list_obj([{"id": "r", "title": "t", "description": "d" * 73}]),
            f"{IA}.action.sections[0].rows[0].description",
            "72",
        ),
        (_list_obj([{"id": "r", "title": "t"}], button="b" * 21), f"{IA}.action.button", "20"),
        (
            _list_obj([{"id": "r", "title": "t"}, {"id": "r", "title": "u"}]),
            f"{IA}.action.sections",
            "unique",
        ),
        (
            interactive(type="location_request_message", action={"name": "send_location"}),
            f"{IA}.body",
            "",
        ),
        (
            interactive(
                type="flow",
                body={"text": "b"},
                action={"name": "flow", "parameters": {"flow_cta": "Go"}},
            ),
            f"{IA}.action.parameters",
            "flow_id",
        ),
        (interactive(type="carousel_of_doom", body={"text": "b"}), f"{IA}.type", "unknown"),
        ({"type": "reaction", "reaction": {"emoji": "👍"}}, f"{WA}.reaction.message_id", ""),
        ({"type": "template", "template": {"language": {"code": "en"}}}, f"{WA}.template.name", ""),
        (
            {"type": "template", "template": {"name": "t", "language": {}}},
            f"{WA}.template.language.code",
            "",
        ),
        ({"type": "image", "image": {}}, f"{WA}.image", "exactly one"),
        (
            {"type": "image", "image": {"id": "1", "link": "https://e.com/x"}},
            f"{WA}.image",
            "exactly one",
        ),
        (
            {"type": "image", "image": {"id": "1", "caption": "c" * 1025}},
            f"{WA}.image.caption",
            "1024",
        ),
        ({"type": "audio", "audio": {"id": "1", "caption": "c"}}, f"{WA}.audio.caption", ""),
        ({"type": "text", "text": {"body": "t" * 4097}}, f"{WA}.text.body", "4096"),
        (
            {"type": "location", "location": {"latitude": 91, "longitude": 0}},
            f"{WA}.location.latitude",
            "90",
        ),
        ({"type": "contacts", "contacts": []}, f"{WA}.contacts", ""),
        ({"type": "poll", "poll": {}}, f"{WA}.type", "unknown"),
        ({"text": {"body": "no type"}}, f"{WA}.type", "unknown"),
        ({"type": "text", "text": {"body": "hi"}, "to": "123"}, f"{WA}.to", ""),
    ],
)
def test_custom_validation_names_field_and_limit(obj, field, limit):
    error = invalid(custom(obj))
    assert error.field == field
    assert limit in error.problem
    assert str(error).startswith(field)


def test_custom_at_every_limit_is_accepted():
    assert only(custom(_buttons_obj(("a" * 256, "T" * 20), ("b", "B"), ("c", "C")))).kind
    rows = [{"id": "r" * 200, "title": "t" * 24, "description": "d" * 72}]
    rows += [{"id": f"r{i}", "title": "t"} for i in range(9)]
    assert only(custom(_list_obj(rows, button="b" * 20))).kind is OutboundKind.INTERACTIVE_LIST
    assert only(custom({"type": "text", "text": {"body": "t" * 4096}})).kind is OutboundKind.TEXT


def test_custom_envelope_keys_are_dropped():
    obj = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": "text",
        "text": {"body": "hi"},
    }
    assert only({"custom": obj}).body == {"type": "text", "text": {"body": "hi"}}


# ---------------------------------------------------------------- payload envelope and order


def test_to_payload_adds_envelope_and_optional_context():
    message = only({"text": "Hi"})
    assert message.to_payload("+15550001111") == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+15550001111",
        "type": "text",
        "text": {"body": "Hi"},
    }
    quoted = message.to_payload("15550001111", reply_to="wamid.ABC")
    assert quoted["context"] == {"message_id": "wamid.ABC"}
    assert "context" not in message.body


def test_order_follows_rasa_text_custom_image_attachment_elements():
    response = {
        "text": "t" * 2000,
        "custom": {"type": "text", "text": {"body": "custom"}},
        "image": "https://e.com/i.jpg",
        "attachment": "https://e.com/a.pdf",
        "elements": [{"title": "E"}],
    }
    kinds = [m.kind for m in build_messages(copy.deepcopy(response))]
    assert kinds == [
        OutboundKind.TEXT,
        OutboundKind.TEXT,
        OutboundKind.IMAGE,
        OutboundKind.DOCUMENT,
        OutboundKind.TEXT,
    ]


def test_empty_response_sends_nothing_and_non_dict_is_rejected():
    assert build_messages({}) == []
    assert build_messages({"text": None, "buttons": []}) == []
    assert invalid([]).field == "response"  # type: ignore[arg-type]
    assert invalid({"text": 5}).field == "text"
