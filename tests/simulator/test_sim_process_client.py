"""The simulator as a subprocess (``python -m simulator``) driven by ``SimulatorClient``, and
the command line / environment configuration."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from simulator.__main__ import parse_config
from simulator.client import SimulatorClient, SimulatorError
from simulator.config import PhoneNumber
from simulator.process import SimulatorProcess

CONTACT = "16505551234"


class ThreadedSink:
    """A bot stand-in on a thread: records (raw body, signature) of every webhook."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str | None]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                sink.received.append((raw, self.headers.get("X-Hub-Signature-256")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def statuses(self) -> list[dict]:
        return [
            s
            for raw, _ in self.received
            for e in json.loads(raw)["entry"]
            for c in e["changes"]
            for s in c["value"].get("statuses", [])
        ]


@pytest.fixture(scope="module")
def sink() -> Iterator[ThreadedSink]:
    sink = ThreadedSink()
    sink.thread.start()
    yield sink
    sink.server.shutdown()


@pytest.fixture(scope="module")
def process(sink: ThreadedSink) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(
        webhook_url=sink.url,
        app_secret="S3CRET",
        access_token="T0KEN",
        extra_args=["--status-delay", "0", "--webhook-retry-base", "0.01"],
    ) as process:
        yield process


@pytest.fixture
def client(process: SimulatorProcess, sink: ThreadedSink) -> SimulatorClient:
    process.client.reset()
    sink.received.clear()
    return process.client


def send(process: SimulatorProcess, body: dict, token: str = "T0KEN") -> requests.Response:
    return requests.post(
        f"{process.graph_url('v21.0')}/{process.phone_number_id}/messages",
        json={"messaging_product": "whatsapp", "to": CONTACT, **body},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_conversation_through_the_subprocess(process, client, sink):
    played = client.inbound_text(CONTACT, "hi", name="Sheena")
    assert played["webhook_status"] == 200
    raw, signature = sink.received[-1]
    expected = "sha256=" + hmac.new(b"S3CRET", raw, hashlib.sha256).hexdigest()
    assert signature == expected
    response = send(process, {"type": "text", "text": {"body": "Hello Sheena"}})
    assert response.status_code == 200, response.text
    wamid = response.json()["messages"][0]["id"]
    (message,) = client.wait_for_messages(CONTACT, 1, timeout=5)
    assert message["payload"]["text"]["body"] == "Hello Sheena"
    record = client.wait_for_status(wamid, "read", timeout=5)
    assert [s["status"] for s in record["statuses"]] == ["sent", "delivered", "read"]
    client.wait_idle()
    assert [s["status"] for s in sink.statuses()] == ["sent", "delivered", "read"]
    assert send(process, {"status": "read", "message_id": played["wamid"]}).json() == {
        "success": True
    }
    assert client.read_receipts(CONTACT)[0]["message_id"] == played["wamid"]


def test_client_clock_faults_behaviour_and_stats(process, client):
    before = client.clock()
    assert client.advance_clock(60) - before >= 60
    assert client.set_clock(1_760_000_000) == pytest.approx(1_760_000_000, abs=2)
    client.inbound_text(CONTACT, "hi")
    client.set_faults(throttle={"count": 1, "code": 131056})
    throttled = send(process, {"type": "text", "text": {"body": "x"}})
    assert throttled.status_code == 400 and throttled.json()["error"]["code"] == 131056
    assert send(process, {"type": "text", "text": {"body": "x"}}).status_code == 200
    assert client.clear_faults()["throttle"] is None
    assert client.set_behaviour(CONTACT, "offline")["behaviour"] == "offline"
    stats = client.stats()
    assert stats["faults_served"] == {"throttle": 1}
    assert stats["sends_accepted"] == 1
    assert client.contact(CONTACT)["windows"]["106540352242922"]["service_window_open"]


def test_client_media_reply_and_raw(process, client, sink):
    played = client.inbound_media(CONTACT, "image", caption="look")
    meta = requests.get(
        f"{process.graph_url()}/{played['media_id']}",
        headers={"Authorization": "Bearer T0KEN"},
        timeout=5,
    ).json()
    data = requests.get(meta["url"], headers={"Authorization": "Bearer T0KEN"}, timeout=5)
    assert data.status_code == 200 and data.content[:3] == b"\xff\xd8\xff"
    client.inbound_reply(CONTACT, "wamid.X", "yes", "Yes")
    reply = json.loads(sink.received[-1][0])["entry"][0]["changes"][0]["value"]["messages"][0]
    assert reply["interactive"]["button_reply"] == {"id": "yes", "title": "Yes"}
    result = client.post_webhook({"object": "whatsapp_business_account", "entry": []}, sign=False)
    assert result["webhook_status"] == 200 and sink.received[-1][1] is None


def test_client_raises_on_control_errors(client):
    with pytest.raises(SimulatorError, match="behaviour"):
        client.set_behaviour(CONTACT, "asleep")
    with pytest.raises(TimeoutError):
        client.wait_for_messages(CONTACT, 1, timeout=0.2)


def test_process_reports_early_exit(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("templates: 3\n")
    with pytest.raises(RuntimeError, match="exited early"):
        SimulatorProcess(templates=broken, startup_timeout=10).start()


def test_config_from_arguments():
    args, config = parse_config(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--webhook-url",
            "http://bot/webhook",
            "--app-secret",
            "A",
            "--access-token",
            "B",
            "--phone-number-id",
            "1",
            "--display-phone-number",
            "111",
            "--phone-number-id",
            "2",
            "--display-phone-number",
            "222",
            "--waba-id",
            "W",
        ],
        env={},
    )
    assert (args.host, args.port) == ("0.0.0.0", 9000)
    assert config.phone_numbers == (PhoneNumber("1", "111"), PhoneNumber("2", "222"))
    assert (config.webhook_url, config.app_secret, config.access_token, config.waba_id) == (
        "http://bot/webhook",
        "A",
        "B",
        "W",
    )


def test_config_from_environment():
    env = {
        "SIM_PORT": "8123",
        "SIM_WEBHOOK_URL": "",
        "SIM_APP_SECRET": "envsecret",
        "SIM_PHONE_NUMBER_ID": "10,20",
        "SIM_DISPLAY_PHONE_NUMBER": "100,200",
        "SIM_TEMPLATES": "/tmp/t.yaml",
        "SIM_STATUS_DELAY": "0",
    }
    args, config = parse_config([], env=env)
    assert args.port == 8123
    assert config.webhook_url is None
    assert config.app_secret == "envsecret"
    assert [p.id for p in config.phone_numbers] == ["10", "20"]
    assert config.templates_path == Path("/tmp/t.yaml")
    assert config.status_delay_seconds == 0
    _, defaults = parse_config([], env={})
    assert defaults.phone_numbers == (PhoneNumber("106540352242922", "15550783881"),)
    assert defaults.webhook_url == "http://127.0.0.1:5005/webhooks/whatsapp/webhook"


def test_config_rejects_unpaired_numbers():
    with pytest.raises(SystemExit):
        parse_config(["--phone-number-id", "1", "--phone-number-id", "2"], env={})


def test_process_stops_promptly_with_webhook_retries_pending():
    process = SimulatorProcess(webhook_url="http://127.0.0.1:9/unreachable").start()
    try:
        played = process.client.inbound_text(CONTACT, "hi")
        assert played["webhook_status"] is None  # a retry is now waiting in the background
    finally:
        started = time.monotonic()
        process.stop()
    assert time.monotonic() - started < 3
