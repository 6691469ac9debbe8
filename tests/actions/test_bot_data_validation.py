"""`rasa data validate` may warn only about what the design makes unavoidable.

Rasa 3.6's validator (rasa/validator.py) prints, without failing even under
`--fail-on-warnings` (those checks do `ok = ignore_warnings or ok`):
- every domain intent without NLU examples (`Validator.verify_intents`): the
  `whatsapp_*` intents come from the WhatsApp channel as intent commands and
  must have none, or the classifier would learn to guess them from typed text;
- every response no story or rule names (`Validator.verify_utterances_in_stories`):
  responses that custom actions send (named in actions/*.py, e.g. the
  `utter_unsupported_*` of action_whatsapp_unsupported_reply) need no story.
This test runs the checks of `rasa data validate` and fails on a failed check or on
any other warning, including non-failing ones such as an intent no story uses.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SENT_BY_ACTIONS = {
    name
    for source in (ROOT / "actions").glob("*.py")
    for name in re.findall(r"utter_[a-z_]+", source.read_text())
}
UNUSED_RESPONSE = re.compile(r"The utterance '(utter_[a-z_]+)' is not used in any story or rule\.")
EXPECTED = (
    re.compile(
        r"The intent 'whatsapp_[a-z_]+' is listed in the domain file, "
        r"but is not found in the NLU training data\."
    ),
)


def expected(message: str) -> bool:
    unused = UNUSED_RESPONSE.search(message)
    if unused is not None:
        name = unused.group(1)
        return name in SENT_BY_ACTIONS or any(
            name.startswith(prefix) for prefix in SENT_BY_ACTIONS if prefix.endswith("_")
        )
    return any(pattern.search(message) for pattern in EXPECTED)


def test_rasa_data_validate_warns_only_about_channel_commands_and_action_responses():
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.utils.common import EXPECTED_WARNINGS  # what the rasa CLI hides itself
    from rasa.validator import Validator

    importer = TrainingDataImporter.load_from_config(
        config_path=str(ROOT / "config.yml"),
        domain_path=str(ROOT / "domain.yml"),
        training_data_paths=[str(ROOT / "data")],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validator = Validator.from_importer(importer)
        results = {
            "domain": validator.verify_domain_validity(),
            "actions": validator.verify_actions_in_stories_rules(),
            "forms": validator.verify_forms_in_stories_rules(),
            "form slots": validator.verify_form_slots(),
            "slot mappings": validator.verify_slot_mappings(),
            "nlu": validator.verify_nlu(ignore_warnings=True),
            "stories": validator.verify_story_structure(ignore_warnings=False),
        }
        validator.warn_if_config_mandatory_keys_are_not_set()

    assert all(results.values()), results
    messages = [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning)
        and not any(
            issubclass(w.category, category) and re.match(pattern, str(w.message))
            for category, pattern in EXPECTED_WARNINGS
        )
    ]
    unexpected = [m for m in messages if not expected(m)]
    assert unexpected == []


def test_whatsapp_button_responses_fit_reply_buttons():
    """At most 3 buttons with titles of at most 20 characters (WhatsApp reply buttons)."""
    import yaml

    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    too_big = [
        (name, variant.get("buttons"))
        for name, variants in domain["responses"].items()
        for variant in variants
        if variant.get("buttons")
        and (
            len(variant["buttons"]) > 3
            or any(len(button["title"]) > 20 for button in variant["buttons"])
        )
    ]
    assert too_big == []


def test_streak_slot_is_not_filled_by_running_the_action_on_every_message():
    """A `custom` mapping naming an action makes action_extract_slots run it each turn."""
    import yaml

    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    mappings = domain["slots"]["whatsapp_unsupported_streak"]["mappings"]
    assert mappings == [{"type": "custom"}]
