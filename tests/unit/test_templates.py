"""The template catalogue, parameter filling and the send payload (whatsapp_core.templates)."""

import copy

import pytest

from simulator.default_templates import DEFAULT_TEMPLATES
from simulator.media import MediaStore
from simulator.templates import Template as SimulatorTemplate
from simulator.templates import TemplateStore, render_template_send
from tests.conftest import REPO_ROOT, corpus_json
from whatsapp_core.templates import (
    CatalogueError,
    ContactContext,
    PreparedTemplate,
    RefusalReason,
    TemplateCatalogue,
    TemplatePreview,
    TemplateRefusal,
    prepare_template,
    preview,
)

CATALOGUE_FILE = REPO_ROOT / "templates" / "catalogue.yml"
FOLLOW_UP_IT = (
    "Ciao {{1}}, vorrei seguire la nostra conversazione precedente. C'è altro con cui hai "
    "bisogno di assistenza? Fammi sapere e sarò felice di aiutarti."
)


@pytest.fixture
def catalogue() -> TemplateCatalogue:
    return TemplateCatalogue.load(CATALOGUE_FILE)


def sheena(language: str | None = "it", **kwargs) -> ContactContext:
    return ContactContext(profile_name="Sheena", language=language, **kwargs)


def one(name: str, **languages) -> TemplateCatalogue:
    """A catalogue with one template; ``languages`` maps code -> body (APPROVED)."""
    return TemplateCatalogue.from_dict(
        {
            "templates": [
                {
                    "name": name,
                    "category": "UTILITY",
                    "parameters": {"1": {"source": "slot:note", "fallback": "-"}},
                    "languages": {
                        code: {"status": "APPROVED", "body": body}
                        for code, body in languages.items()
                    },
                }
            ]
        }
    )


def prepared(result) -> PreparedTemplate:
    assert isinstance(result, PreparedTemplate), result
    return result


def refused(result, reason: RefusalReason) -> TemplateRefusal:
    assert isinstance(result, TemplateRefusal), result
    assert result.reason is reason, result
    return result


# -------------------------------------------------------------- shipped catalogue
def test_shipped_catalogue_has_the_help_centre_follow_up_in_italian_and_english(catalogue):
    follow_up = catalogue.get("follow_up")
    assert follow_up.category == "UTILITY"
    assert follow_up.languages["it"].body == FOLLOW_UP_IT
    assert follow_up.languages["en"].body.startswith("Hi {{1}}, I'd like to follow up")
    assert {t.status for t in follow_up.languages.values()} == {"APPROVED"}
    assert follow_up.parameters["1"].source == "contact.name"


def test_shipped_catalogue_matches_what_the_simulator_accepts(catalogue):
    store = TemplateStore(SimulatorTemplate.from_json(t) for t in DEFAULT_TEMPLATES)
    slots = {"appointment_date": "May 3", "appointment_time": "10:30", "order_id": "#1"}
    for template in catalogue.templates:
        for code, translation in template.languages.items():
            simulated = store.get(template.name, code)
            assert simulated is not None, (template.name, code)
            assert simulated.status.value == translation.status
            assert simulated.category.value == template.category
            assert simulated.body_text == translation.body
            if translation.status != "APPROVED":
                continue
            result = prepared(
                prepare_template(catalogue, template.name, sheena(code, slots=slots))
            )
            assert result.language == code
            rendered = render_template_send(
                result.payload["template"], store=store, media=MediaStore(), now=0
            )
            assert rendered.body == result.rendered_text


# ------------------------------------------------------------------- language
def test_italian_contact_gets_the_italian_follow_up_with_the_profile_name(catalogue):
    result = prepared(prepare_template(catalogue, "follow_up", sheena("it")))
    assert result.rendered_text == FOLLOW_UP_IT.replace("{{1}}", "Sheena")
    assert result.parameters == (("1", "Sheena"),)
    assert result.payload == {
        "type": "template",
        "template": {
            "name": "follow_up",
            "language": {"code": "it"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Sheena"}]}],
        },
    }


def test_regional_contact_language_matches_the_base_language(catalogue):
    assert prepared(prepare_template(catalogue, "follow_up", sheena("it-IT"))).language == "it"
    assert prepared(prepare_template(catalogue, "follow_up", sheena("en_GB"))).language == "en"


def test_base_language_translation_is_preferred_over_another_region():
    catalogue = one("note", en_US="US {{1}}", en="EN {{1}}")
    assert prepared(prepare_template(catalogue, "note", sheena("en_GB"))).language == "en"
    assert prepared(prepare_template(catalogue, "note", sheena("en_us"))).language == "en_US"


def test_fallback_given_for_the_base_language_serves_regional_translations():
    catalogue = TemplateCatalogue.from_dict(
        {
            "templates": [
                {
                    "name": "hi",
                    "category": "UTILITY",
                    "parameters": {"1": {"source": "contact.name", "fallback": {"en": "there"}}},
                    "languages": {"en_US": {"status": "APPROVED", "body": "Hi {{1}}"}},
                }
            ]
        }
    )
    result = prepare_template(catalogue, "hi", ContactContext(language="en_US"))
    assert prepared(result).rendered_text == "Hi there"


def test_unknown_or_missing_language_falls_back_to_the_templates_fallback_language(catalogue):
    assert prepared(prepare_template(catalogue, "follow_up", sheena("de"))).language == "en"
    assert prepared(prepare_template(catalogue, "follow_up", sheena(None))).language == "en"


def test_default_language_is_the_last_resort():
    catalogue = one("note", es="Nota: {{1}}", pt_BR="Nota: {{1}}")
    result = prepare_template(catalogue, "note", sheena("de"), default_language="pt")
    assert prepared(result).language == "pt_BR"
    refusal = refused(prepare_template(catalogue, "note", sheena("de")), RefusalReason.NO_LANGUAGE)
    assert "available: es, pt_BR" in refusal.detail


def test_paused_contact_language_falls_back_to_an_approved_one(catalogue):
    catalogue.update_status("follow_up", "it", "PAUSED")
    assert prepared(prepare_template(catalogue, "follow_up", sheena("it"))).language == "en"


# ----------------------------------------------------------------- parameters
def test_missing_profile_name_uses_the_fallback_of_the_chosen_language(catalogue):
    nameless = ContactContext(profile_name=None, language="it")
    assert prepared(prepare_template(catalogue, "follow_up", nameless)).parameters == (
        ("1", "cliente"),
    )
    blank = ContactContext(profile_name="  \n ", language="en")
    assert "Hi there," in prepared(prepare_template(catalogue, "follow_up", blank)).rendered_text


def test_newlines_tabs_and_long_space_runs_in_values_become_single_spaces(catalogue):
    messy = ContactContext(profile_name="Anna\nMaria\t  Rossi      Jr", language="it")
    result = prepared(prepare_template(catalogue, "follow_up", messy))
    assert result.parameters == (("1", "Anna Maria Rossi Jr"),)


def test_slot_metadata_and_literal_sources():
    catalogue = TemplateCatalogue.from_dict(
        {
            "templates": [
                {
                    "name": "sources",
                    "category": "UTILITY",
                    "parameters": {
                        "1": "slot:order_id",
                        "2": {"source": "metadata:whatsapp.wa_id"},
                        "3": {"source": "literal:thanks"},
                    },
                    "languages": {"en": {"status": "APPROVED", "body": "{{3}} {{1}} {{2}}"}},
                }
            ]
        }
    )
    contact = ContactContext(
        language="en", slots={"order_id": 1234}, metadata={"whatsapp": {"wa_id": "393331112222"}}
    )
    result = prepared(prepare_template(catalogue, "sources", contact))
    assert result.rendered_text == "thanks 1234 393331112222"
    assert result.parameters == (("1", "1234"), ("2", "393331112222"), ("3", "thanks"))


def test_named_parameters_carry_their_names(catalogue):
    contact = sheena("en", slots={"appointment_date": "May 3", "appointment_time": "10:30"})
    result = prepared(prepare_template(catalogue, "appointment_reminder", contact))
    assert result.rendered_text == "Hi Sheena, your appointment is on May 3 at 10:30."
    assert result.payload["template"]["components"] == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Sheena", "parameter_name": "first_name"},
                {"type": "text", "text": "May 3", "parameter_name": "date"},
                {"type": "text", "text": "10:30", "parameter_name": "time"},
            ],
        }
    ]


def test_header_and_buttons_are_filled_in_meta_order(catalogue):
    result = prepared(prepare_template(catalogue, "summer_sale", sheena("en", slots={"sale_code": "vip"})))
    assert result.category == "MARKETING"
    assert result.payload["template"]["components"] == [
        {
            "type": "header",
            "parameters": [
                {"type": "image", "image": {"link": "https://shop.example.com/img/summer.jpg"}}
            ],
        },
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Sheena"}, {"type": "text", "text": "25%"}],
        },
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "vip"}]},
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "1",
            "parameters": [{"type": "payload", "payload": "/stop_promotions"}],
        },
    ]


def test_media_header_without_mapping_uses_the_example_and_a_numeric_value_is_a_media_id():
    data = {
        "templates": [
            {
                "name": "pic",
                "category": "MARKETING",
                "languages": {
                    "en": {
                        "status": "APPROVED",
                        "body": "Look",
                        "header": {"format": "VIDEO", "example": "https://x.example/v.mp4"},
                    }
                },
            }
        ]
    }
    result = prepared(prepare_template(TemplateCatalogue.from_dict(data), "pic", sheena("en")))
    assert result.payload["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "video", "video": {"link": "https://x.example/v.mp4"}}]}
    ]
    data["templates"][0]["parameters"] = {"header": "slot:video_id"}
    contact = sheena("en", slots={"video_id": "1234567890"})
    result = prepared(prepare_template(TemplateCatalogue.from_dict(data), "pic", contact))
    assert result.payload["template"]["components"][0]["parameters"][0]["video"] == {
        "id": "1234567890"
    }


def test_template_without_placeholders_sends_no_components():
    catalogue = TemplateCatalogue.from_dict(
        {"templates": [{"name": "hello", "category": "UTILITY",
                        "languages": {"en": {"status": "APPROVED", "body": "Hello!"}}}]}
    )
    result = prepared(prepare_template(catalogue, "hello", sheena("en")))
    assert result.payload == {
        "type": "template",
        "template": {"name": "hello", "language": {"code": "en"}},
    }


# ------------------------------------------------------------------- refusals
def test_unknown_template_is_refused(catalogue):
    refused(prepare_template(catalogue, "nope", sheena()), RefusalReason.NOT_FOUND)


def test_paused_template_is_refused_with_its_status(catalogue):
    contact = sheena("en", slots={"order_id": "#1", "delivery_date": "Monday"})
    refusal = refused(prepare_template(catalogue, "shipping_update", contact), RefusalReason.NOT_APPROVED)
    assert (refusal.language, refusal.status) == ("en", "PAUSED")


def test_value_without_fallback_is_refused_naming_the_parameter(catalogue):
    contact = sheena("en", slots={"appointment_date": "May 3"})
    refusal = refused(
        prepare_template(catalogue, "appointment_reminder", contact),
        RefusalReason.MISSING_PARAMETER,
    )
    assert refusal.parameter == "time"
    assert "slot:appointment_time" in refusal.detail


def test_url_button_suffix_without_a_mapping_is_refused():
    data = {
        "templates": [
            {
                "name": "track",
                "category": "UTILITY",
                "languages": {
                    "en": {
                        "status": "APPROVED",
                        "body": "Track it",
                        "buttons": [{"type": "URL", "text": "Track", "url": "https://t.example/{{1}}"}],
                    }
                },
            }
        ]
    }
    refusal = refused(
        prepare_template(TemplateCatalogue.from_dict(data), "track", sheena("en")),
        RefusalReason.MISSING_PARAMETER,
    )
    assert refusal.parameter == "button_0"


def test_body_placeholders_must_match_the_mapped_parameters():
    catalogue = one("note", en="Note {{1}} and {{2}}")
    refusal = refused(
        prepare_template(catalogue, "note", sheena("en")), RefusalReason.PARAMETER_COUNT_MISMATCH
    )
    assert "['1', '2']" in refusal.detail
    stale = one("note", en="Note only")
    refused(prepare_template(stale, "note", sheena("en")), RefusalReason.PARAMETER_COUNT_MISMATCH)


def test_body_longer_than_1024_characters_after_filling_is_refused():
    catalogue = one("note", en="x" * 1000 + " {{1}}")
    ok = ContactContext(language="en", slots={"note": "y" * 23})
    assert len(prepared(prepare_template(catalogue, "note", ok)).rendered_text) == 1024
    too_long = ContactContext(language="en", slots={"note": "y" * 24})
    refused(prepare_template(catalogue, "note", too_long), RefusalReason.BODY_TOO_LONG)


# -------------------------------------------------------------------- preview
def test_preview_tells_an_agent_where_each_value_came_from(catalogue):
    result = preview(catalogue, "summer_sale", ContactContext(profile_name=None, language="en"))
    assert isinstance(result, TemplatePreview)
    assert result.text == "Hi there, our summer sale is on: 25% off everything until Sunday."
    assert result.describe().splitlines()[1:] == [
        "header = 'https://shop.example.com/img/summer.jpg' "
        "(literal:https://shop.example.com/img/summer.jpg)",
        "{{1}} = 'there' (fallback, contact.name was empty)",
        "{{2}} = '25%' (fallback, slot:sale_discount was empty)",
        "button_0 = 'summer25' (fallback, slot:sale_code was empty)",
        "button_1 = '/stop_promotions' (literal:/stop_promotions)",
    ]
    refused(preview(catalogue, "nope", sheena()), RefusalReason.NOT_FOUND)


# ------------------------------------------------------------ status and sync
def test_status_webhook_pauses_and_meta_approval_restores(catalogue):
    event = corpus_json("template_status_update_paused.json")["entry"][0]["changes"][0]["value"]
    assert not catalogue.update_status(
        event["message_template_name"], event["message_template_language"], event["event"]
    )
    assert catalogue.update_status("follow_up", "EN", "PAUSED")
    assert catalogue.get("follow_up").languages["en"].status == "PAUSED"
    assert catalogue.update_status("follow_up", "en", "FLAGGED")
    assert catalogue.get("follow_up").languages["en"].status == "APPROVED"
    assert not catalogue.update_status("follow_up", "fr", "PAUSED")


def test_dump_and_load_round_trip(catalogue, tmp_path):
    path = tmp_path / "catalogue.yml"
    catalogue.dump(path)
    assert path.read_text(encoding="utf-8").startswith("# WhatsApp message templates")
    assert TemplateCatalogue.load(path).to_dict() == catalogue.to_dict()


def graph_item(name, language, status, body, **extra):
    return {
        "name": name,
        "language": language,
        "status": status,
        "category": extra.pop("category", "UTILITY"),
        "id": extra.pop("id", "1"),
        "components": [{"type": "BODY", "text": body}, *extra.pop("components", [])],
        **extra,
    }


def test_replace_from_graph_takes_metas_texts_and_statuses_and_keeps_local_mappings(catalogue):
    data = [
        graph_item("follow_up", "it", "PAUSED", FOLLOW_UP_IT),
        graph_item("follow_up", "en", "APPROVED", "Hello {{1}}, anything else?"),
        graph_item(
            "promo",
            "en_US",
            "APPROVED",
            "Deal for {{1}}",
            category="MARKETING",
            components=[
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://i.example/a.jpg"]}},
                {"type": "FOOTER", "text": "Stop: reply STOP"},
                {"type": "BUTTONS", "buttons": [{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+1555"}]},
            ],
        ),
    ]
    summary = catalogue.replace_from_graph(copy.deepcopy(data))
    assert summary.added == ("promo",)
    assert set(summary.removed) == {"appointment_reminder", "summer_sale", "shipping_update"}
    assert summary.status_changes == (
        ("follow_up", "it", "APPROVED", "PAUSED"),
        ("promo", "en_US", None, "APPROVED"),
    )
    assert summary.unmapped == ("promo",)
    follow_up = catalogue.get("follow_up")
    assert follow_up.parameters["1"].fallback_for("it") == "cliente"
    assert follow_up.fallback_language == "en"
    result = prepared(prepare_template(catalogue, "follow_up", sheena("it")))
    assert result.language == "en"
    assert result.rendered_text == "Hello Sheena, anything else?"
    promo = catalogue.get("promo").languages["en_US"]
    assert promo.header.example == "https://i.example/a.jpg"
    assert promo.footer == "Stop: reply STOP"
    assert promo.buttons[0].to_dict() == {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+1555"}
    refused(prepare_template(catalogue, "promo", sheena("en")), RefusalReason.PARAMETER_COUNT_MISMATCH)


def test_replace_from_graph_rejects_an_item_without_a_body_and_changes_nothing(catalogue):
    before = catalogue.to_dict()
    with pytest.raises(CatalogueError, match="BODY"):
        catalogue.replace_from_graph(
            [{"name": "x", "language": "en", "status": "APPROVED", "category": "UTILITY", "components": []}]
        )
    assert catalogue.to_dict() == before


# ------------------------------------------------------------- file validation
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"category": "UTILITY", "languages": {"en": {"status": "APPROVED", "body": "x"}}}, "'name'"),
        ({"name": "a", "category": "UTILITY", "languages": {}}, "at least one language"),
        ({"name": "a", "category": "UTILITY", "languages": {"en": {"status": "APPROVED"}}}, "'body'"),
        (
            {"name": "a", "category": "UTILITY", "parameters": {"1": "profile.name"},
             "languages": {"en": {"status": "APPROVED", "body": "{{1}}"}}},
            "unknown parameter source 'profile.name'",
        ),
        (
            {"name": "a", "category": "UTILITY", "parameters": {"1": "slot:"},
             "languages": {"en": {"status": "APPROVED", "body": "{{1}}"}}},
            "needs a value after ':'",
        ),
        (
            {"name": "a", "category": "UTILITY", "parameter_format": "MIXED",
             "languages": {"en": {"status": "APPROVED", "body": "x"}}},
            "POSITIONAL or NAMED",
        ),
    ],
)
def test_malformed_catalogue_names_the_problem(template, message):
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(")):
        TemplateCatalogue.from_dict({"templates": [template]})


def test_duplicate_template_names_are_refused():
    item = {"name": "a", "category": "UTILITY", "languages": {"en": {"status": "APPROVED", "body": "x"}}}
    with pytest.raises(CatalogueError, match="appear twice: a"):
        TemplateCatalogue.from_dict({"templates": [item, item]})
