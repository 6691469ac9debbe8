"""Several business numbers on one channel, against the simulator."""

from __future__ import annotations

import asyncio
import time

import pytest

from simulator.process import SimulatorProcess
from tests.http.conftest import SECRET, credentials, start_server, stop_server
from tests.http.test_webhook_http import text_message, webhook

PRIMARY, SECOND = "106540352242922", "106540352242923"
CONTACT = "393331112222"


@pytest.fixture
def sim():
    process = SimulatorProcess(
        app_secret=SECRET,
        access_token="test-access-token",
        phone_number_id=PRIMARY,
        extra_args=["--phone-number-id", SECOND, "--display-phone-number", "15550000002"],
    ).start()
    yield process
    process.stop()


async def test_same_contact_on_two_numbers_has_two_conversations_and_replies_from_each(tmp_path, sim):
    async def echo(message) -> None:
        await message.output_channel.send_text_message(message.sender_id, f"echo {message.text}")

    creds = credentials(
        tmp_path,
        phone_number_id=[int(PRIMARY), {"id": SECOND, "access_token": "test-access-token"}],
        api_base_url=sim.base_url,
    )
    running, server = await start_server(creds, on_message=echo)
    try:
        # the simulator must know the contact wrote to both numbers (window)
        sim.client.inbound_text(CONTACT, "to primary", phone_number_id=PRIMARY)
        sim.client.inbound_text(CONTACT, "to second", phone_number_id=SECOND)
        now = int(time.time())
        one = text_message("wamid.n1", "one", sender=CONTACT, ts=now)
        two = text_message("wamid.n2", "two", sender=CONTACT, ts=now)
        await running.post(webhook(one, phone_number_id=PRIMARY))
        await running.post(webhook(two, phone_number_id=SECOND))
        await running.settle()
        await asyncio.wait_for(running.channel._runtime.sender.wait_idle(), 20)
        ids = sorted(t.sender_id for t in running.turns)
        assert ids == [CONTACT, f"{CONTACT}@{SECOND}"]
        sent = {m["payload"]["text"]["body"]: m["phone_number_id"] for m in sim.client.messages()}
        assert sent["echo one"] == PRIMARY and sent["echo two"] == SECOND
        store = running.channel._runtime.store
        assert await store.last_inbound_timestamp(CONTACT, PRIMARY) is not None
        assert await store.last_inbound_timestamp(CONTACT, SECOND) is None
        assert await store.last_inbound_timestamp(f"{CONTACT}@{SECOND}", SECOND) is not None
    finally:
        await stop_server(running, server)
