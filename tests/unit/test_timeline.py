import json

import pytest

from tools.timeline import main, render
from whatsapp_core.store import InboxItem, OutboxState, StatusChange, WhatsAppStore


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'timeline.db'}"


async def fill(db_url: str) -> None:
    store = WhatsAppStore(db_url, instance_id="t")
    try:
        unsupported = {"kind": "ephemeral", "recommended_action": "disable_ephemeral_and_resend"}
        await store.accept(
            [
                InboxItem("wamid.in1", "111", "pn", "111", 100, True, "hi", {"whatsapp": {"type": "text"}}),
                InboxItem(
                    "wamid.in2", "111", "pn", "111", 200, True, "/whatsapp_unsupported",
                    {"whatsapp": {"type": "unsupported", "unsupported": unsupported, "raw": {"x": 1}}},
                ),
            ]
        )
        rows = await store.enqueue_outbound(
            "111", "pn", "111",
            [("text", {"type": "text", "text": {"body": "hello"}}),
             ("text", {"type": "text", "text": {"body": "are you there?"}}),
             ("text", {"type": "text", "text": {"body": "never arrives"}})],
        )
        for row, wamid in zip(rows, ["wamid.o1", "wamid.o2", "wamid.o3"], strict=True):
            await store.finish_outbound(row.id, state=OutboxState.SENT, wamid=wamid, attempts=1)
        await store.apply_statuses(
            [
                StatusChange("wamid.o1", OutboxState.DELIVERED),
                StatusChange("wamid.o1", OutboxState.READ),
                StatusChange("wamid.o2", OutboxState.FAILED, error_code=131026, error_title="Undeliverable"),
            ]
        )
        await store.flag_stuck(older_than_seconds=-1)
    finally:
        store.close()


async def test_timeline_shows_states_failures_stuck_and_unsupported(db_url):
    await fill(db_url)
    store = WhatsAppStore(db_url, instance_id="t2")
    try:
        entries = await store.timeline("111")
    finally:
        store.close()
    assert [e.direction for e in entries] == ["in", "in", "out", "out", "out"]
    first_out = entries[2]
    assert first_out.summary == "hello" and first_out.state == "read"
    assert [s for s, _ in first_out.states] == ["delivered", "read"]
    failed = entries[3]
    assert failed.failure["error_code"] == 131026
    assert "reach_contact_other_channel" in failed.failure["recommended_actions"]
    assert entries[4].failure["stuck"] is True
    assert entries[1].unsupported["kind"] == "ephemeral"
    text = render(entries)
    assert "FAILED 131026" in text and "30-day" in text and "unsupported: ephemeral" in text


async def test_timeline_command_prints_text_and_json(db_url, capsys):
    await fill(db_url)
    assert main(["111", "--db-url", db_url]) == 0
    assert "FAILED 131026" in capsys.readouterr().out
    assert main(["111", "--db-url", db_url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 5 and data[3]["failure"]["needs_agent"] is True


async def test_unknown_contact_and_wrong_database(db_url, capsys):
    assert main(["nobody", "--db-url", db_url]) == 1
    assert "no WhatsApp channel tables" in capsys.readouterr().out
    await fill(db_url)
    assert main(["nobody", "--db-url", db_url]) == 0
    assert "no messages" in capsys.readouterr().out
