"""The window guard and the template ledger that every outbound message goes through."""

from pathlib import Path

import pytest

from whatsapp_core import ledger
from whatsapp_core.outbound import OutboundKind, build_messages
from whatsapp_core.reopening import TemplateResources
from whatsapp_core.send_rules import WINDOW_CLOSED, SendRules
from whatsapp_core.sender import OutboundSender
from whatsapp_core.store import InboxItem, WhatsAppStore
from whatsapp_core.template_status import record_status

REPO = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
CONTACT = "393331234567"


@pytest.fixture
def store(tmp_path):
    created = WhatsAppStore(f"sqlite:///{tmp_path / 'rules.db'}", instance_id="t")
    yield created
    created.close()


def rules_for(store, template="follow_up"):
    resources = TemplateResources(
        store_url=store.url,
        catalogue_path=REPO / "templates" / "catalogue.yml",
        rate_card_path=REPO / "templates" / "rate_card.yml",
    )
    return SendRules(store, resources, closed_window_template=template, clock=lambda: NOW)


async def contact_wrote(store, seconds_ago: float, name="Giulia") -> None:
    metadata = {"whatsapp": {"profile_name": name, "type": "text"}}
    await store.accept(
        [InboxItem(f"wamid.{seconds_ago}", CONTACT, "pn", CONTACT, int(NOW - seconds_ago), True, "hi", metadata)]
    )


async def test_free_form_passes_inside_the_window(store):
    await contact_wrote(store, 24 * 3600 - 1)
    screened = await rules_for(store).screen(CONTACT, "pn", build_messages({"text": "hello"}))
    assert [m.kind for m in screened.send] == [OutboundKind.TEXT] and screened.held == ()


async def test_free_form_outside_the_window_becomes_the_template_for_the_contact(store):
    await contact_wrote(store, 24 * 3600)
    screened = await rules_for(store).screen(
        CONTACT, "pn", build_messages({"text": "one"}) + build_messages({"text": "two"})
    )
    (template,) = screened.send
    assert template.kind is OutboundKind.TEMPLATE
    assert template.body["template"]["name"] == "follow_up"
    parameters = template.body["template"]["components"][0]["parameters"]
    assert parameters[0]["text"] == "Giulia"
    assert [reason for _, reason in screened.held] == [WINDOW_CLOSED, WINDOW_CLOSED]


async def test_a_late_delivered_message_does_not_reopen_the_window(store):
    """Meta re-delivers days later: WhatsApp's timestamp counts, not the arrival."""
    await contact_wrote(store, 3 * 86400)
    screened = await rules_for(store, template=None).screen(CONTACT, "pn", build_messages({"text": "x"}))
    assert screened.send == () and len(screened.held) == 1


async def test_no_window_and_no_contact_message_at_all_holds(store):
    screened = await rules_for(store, template=None).screen(CONTACT, "pn", build_messages({"text": "x"}))
    assert screened.send == () and screened.held[0][1] == WINDOW_CLOSED


async def test_templates_always_pass(store):
    custom = {"custom": {"type": "template", "template": {"name": "follow_up", "language": {"code": "en"}}}}
    screened = await rules_for(store).screen(CONTACT, "pn", build_messages(custom))
    assert [m.kind for m in screened.send] == [OutboundKind.TEMPLATE]


async def test_a_paused_template_is_refused_and_reported(store):
    await contact_wrote(store, 30 * 3600)
    for language in ("it", "en"):
        await store.run(lambda c, language=language: record_status(c, "follow_up", language, "PAUSED"))
    screened = await rules_for(store).screen(CONTACT, "pn", build_messages({"text": "x"}))
    assert screened.send == ()
    assert screened.template_failure == "not_approved"


async def settle(store, wamid, pricing):
    return await store.run(lambda c: ledger.settle_from_pricing(c, wamid, pricing))


async def test_template_needs_balance_and_is_settled_by_metas_pricing(store):
    await contact_wrote(store, 30 * 3600)
    rules = rules_for(store)
    payload = {"to": CONTACT, "type": "template", "template": {"name": "follow_up"}}
    refused = await rules.reserve(1, CONTACT, payload)
    assert refused and refused.startswith("insufficient balance")
    await store.run(lambda c: ledger.top_up(c, ledger.parse_amount("1.00")))
    assert await rules.reserve(2, CONTACT, payload) is None
    await rules.attach(2, "wamid.t2")
    held = (await store.run(ledger.balance)).reserved
    assert held > 0  # utility outside the window is billed
    assert await settle(store, "wamid.t2", {"billable": True, "type": "regular", "category": "utility"})
    balance = await store.run(ledger.balance)
    assert balance.reserved == 0 and balance.available == ledger.parse_amount("1.00") - held
    assert not await settle(store, "wamid.t2", {"billable": True, "type": "regular"})


async def test_free_pricing_releases_the_reservation(store):
    await contact_wrote(store, 30 * 3600)
    await store.run(lambda c: ledger.top_up(c, ledger.parse_amount("1.00")))
    rules = rules_for(store)
    payload = {"to": CONTACT, "type": "template", "template": {"name": "follow_up"}}
    assert await rules.reserve(3, CONTACT, payload) is None
    await rules.attach(3, "wamid.t3")
    assert await settle(store, "wamid.t3", {"billable": False, "type": "free_entry_point"})
    assert (await store.run(ledger.balance)).available == ledger.parse_amount("1.00")


async def test_utility_template_inside_the_window_reserves_nothing(store):
    await contact_wrote(store, 60)
    rules = rules_for(store)
    payload = {"to": CONTACT, "type": "template", "template": {"name": "follow_up"}}
    assert await rules.reserve(4, CONTACT, payload) is None
    assert (await store.run(ledger.balance)).reserved == 0



async def test_screening_inside_a_transaction_reads_no_file_and_asks_for_the_catalogue(store):
    """The sender screens inside a short transaction (on the event loop on SQLite): the
    catalogue file is read outside it, and only when a closed window needs the template."""
    await contact_wrote(store, 30 * 3600)
    rules = rules_for(store)
    messages = build_messages({"text": "x"})
    first = await store.run(lambda c: rules.screen_in(c, CONTACT, "pn", messages))
    assert first.needs_catalogue and first.send == () and first.held == ()
    catalogue = await rules.catalogue()
    second = await store.run(lambda c: rules.screen_in(c, CONTACT, "pn", messages, catalogue))
    assert [m.kind for m in second.send] == [OutboundKind.TEMPLATE] and not second.needs_catalogue


async def test_the_sender_queues_the_template_when_the_window_is_closed(store):
    await contact_wrote(store, 30 * 3600)
    sender = OutboundSender(
        store,
        None,
        access_token_for=lambda _number: "token",
        default_phone_number_id="pn",
        rules=rules_for(store),
    )
    sender.hand_off_to(lambda _jobs: True)  # nothing is sent here
    queued = await sender.send(CONTACT, "pn", CONTACT, build_messages({"text": "x"}))
    assert [row.kind for row in queued] == ["template"]
    assert queued[0].payload["template"]["name"] == "follow_up"
    assert [(r.kind, r.state) for r in await store.outbound_for(CONTACT)] == [
        ("text", "held"), ("template", "queued")
    ]
