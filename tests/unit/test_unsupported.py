import pytest

from whatsapp_core.unsupported import (
    RecommendedReply,
    UnsupportedKind,
    detect_unsupported,
    recommended_reply_for,
)
from whatsapp_core.webhook import InboundMessage


def message(raw: dict) -> InboundMessage:
    return InboundMessage.from_dict({"from": "1", "id": "wamid.u", "timestamp": "1", **raw})


def unsupported(sub_type: str | None, code: int = 131051) -> InboundMessage:
    raw = {"type": "unsupported", "errors": [{"code": code, "title": "t"}]}
    if sub_type is not None:
        raw["unsupported"] = {"type": sub_type}
    return message(raw)


@pytest.mark.parametrize(
    ("sub_type", "kind"),
    [
        ("edit", "edited"),
        ("keep_in_chat", "ephemeral"),
        ("view_once", "view_once"),
        ("poll_creation", "poll"),
        ("poll_update", "poll"),
        ("pin", "pin"),
        ("group_invite", "group_invite"),
        ("gif", "gif"),
        ("link_preview", "link_preview"),
        ("product", "product"),
        ("order", "product"),
        ("button", "interactive"),
        ("list", "interactive"),
        ("interactive", "interactive"),
        ("hsm", "interactive"),
        ("reaction", "reaction"),
        ("image", "media_placeholder"),
        ("location", "media_placeholder"),
        ("media_placeholder", "media_placeholder"),
        ("errors", "unknown"),
        ("something_new", "unknown"),
        (None, "unknown"),
    ],
)
def test_unsupported_type_maps_to_kind(sub_type, kind):
    assert detect_unsupported(unsupported(sub_type)).kind.value == kind


@pytest.mark.parametrize(
    ("code", "kind"), [(131052, "oversized_media"), (131060, "coexistence"), (130501, "group")]
)
def test_error_code_decides_kind(code, kind):
    assert detect_unsupported(unsupported(None, code)).kind.value == kind


def test_oversized_media_code_on_a_media_type_is_still_flagged():
    flagged = detect_unsupported(message({"type": "image", "errors": [{"code": 131052}]}))
    assert flagged.kind is UnsupportedKind.OVERSIZED_MEDIA


def test_legacy_unknown_type():
    assert detect_unsupported(message({"type": "unknown", "errors": [{"code": 131051}]})).kind is (
        UnsupportedKind.UNKNOWN
    )


def test_type_without_sub_object_and_future_type_are_unknown():
    assert detect_unsupported(message({"type": "image"})).kind is UnsupportedKind.UNKNOWN
    assert detect_unsupported(message({"type": "hologram", "hologram": {}})).kind is (
        UnsupportedKind.UNKNOWN
    )


def test_interactive_sub_type_we_do_not_model():
    flagged = detect_unsupported(
        message({"type": "interactive", "interactive": {"type": "call_permission_reply"}})
    )
    assert flagged.kind is UnsupportedKind.INTERACTIVE


def test_supported_kinds_are_not_flagged():
    assert detect_unsupported(message({"type": "text", "text": {"body": "x"}})) is None
    assert detect_unsupported(message({"type": "reaction", "reaction": {"emoji": ""}})) is None
    assert detect_unsupported(message({"type": "request_welcome"})) is None
    nfm = {"type": "nfm_reply", "nfm_reply": {"name": "address_message", "response_json": "{}"}}
    assert detect_unsupported(message({"type": "interactive", "interactive": nfm})) is None
    assert detect_unsupported(message({"type": "contacts", "contacts": [{"name": {}}]})) is None


@pytest.mark.parametrize(
    ("kind", "reply"),
    [
        ("ephemeral", "disable_ephemeral_and_resend"),
        ("view_once", "disable_ephemeral_and_resend"),
        ("coexistence", "resend_from_primary_device"),
        ("group", "resend_from_primary_device"),
        ("oversized_media", "send_smaller_file_or_link"),
        ("edited", "resend_new_wording"),
        ("poll", "share_screenshot_or_text"),
        ("deleted", "share_screenshot_or_text"),
        ("unknown", "share_screenshot_or_text"),
        ("not-a-kind", "share_screenshot_or_text"),
    ],
)
def test_recommended_reply_per_kind(kind, reply):
    assert recommended_reply_for(kind) is RecommendedReply(reply)


def test_every_kind_has_a_reply():
    for kind in UnsupportedKind:
        assert isinstance(recommended_reply_for(kind), RecommendedReply)
