"""Request bodies the benchmarks send: WhatsApp webhooks, Messenger webhooks, REST messages.

Every body is built and signed before a timed run starts, so the load generator only
writes bytes. WhatsApp bodies are serialized the way Meta does (ASCII JSON, ``\\/``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from simulator.config import DEFAULT_DISPLAY_PHONE_NUMBER, DEFAULT_PHONE_NUMBER_ID, DEFAULT_WABA_ID

PHONE_NUMBER_ID = DEFAULT_PHONE_NUMBER_ID
WHATSAPP_PATH = "/webhooks/whatsapp/webhook"
REST_PATH = "/webhooks/rest/webhook"
FACEBOOK_PATH = "/webhooks/facebook/webhook"
FACEBOOK_PAGE_ID = "104000000000001"

# Texts whose turn is one NLU + policy run and one reply (checked by run.py's calibration).
TEXTS = (
    "hello there",
    "I need help with my order",
    "thanks a lot",
    "can I talk to a person",
    "good morning",
    "my parcel has not arrived",
)


def meta_json(payload: Any) -> bytes:
    """Meta-style JSON bytes (ASCII, compact, ``/`` escaped)."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def sign256(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign1(body: bytes, secret: str) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def text_message(wamid: str, sender: str, text: str, timestamp: int | None = None) -> dict:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(int(timestamp if timestamp is not None else time.time())),
        "type": "text",
        "text": {"body": text},
    }


def whatsapp_envelope(
    messages: Sequence[dict] = (),
    statuses: Sequence[dict] = (),
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict:
    """A ``field: messages`` webhook with the given messages and/or statuses."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DEFAULT_DISPLAY_PHONE_NUMBER,
            "phone_number_id": phone_number_id,
        },
    }
    if messages:
        senders = sorted({m["from"] for m in messages})
        value["contacts"] = [
            {"profile": {"name": f"Contact {s[-4:]}"}, "wa_id": s} for s in senders
        ]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": DEFAULT_WABA_ID, "changes": [{"field": "messages", "value": value}]}],
    }


def status(wamid: str, recipient: str, state: str, timestamp: int | None = None) -> dict:
    item: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(int(timestamp if timestamp is not None else time.time())),
        "recipient_id": recipient,
    }
    if state in ("sent", "delivered"):
        item["conversation"] = {"id": "c" + wamid[-12:], "origin": {"type": "service"}}
        item["pricing"] = {"billable": False, "pricing_model": "PMP", "category": "service",
                           "type": "free_customer_service"}
    return item


def messenger_body(sender: str, mid: str, text: str) -> dict:
    """A Facebook Messenger ``page`` webhook with one text message (what Rasa's channel reads)."""
    now_ms = int(time.time() * 1000)
    return {
        "object": "page",
        "entry": [
            {
                "id": FACEBOOK_PAGE_ID,
                "time": now_ms,
                "messaging": [
                    {
                        "sender": {"id": sender},
                        "recipient": {"id": FACEBOOK_PAGE_ID},
                        "timestamp": now_ms,
                        "message": {"mid": mid, "text": text},
                    }
                ],
            }
        ],
    }


def http_request(
    path: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> bytes:
    """A complete HTTP/1.1 keep-alive request."""
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def whatsapp_request(envelope: dict, secret: str, *, signature: str | None = "sign") -> bytes:
    body = meta_json(envelope)
    headers = {"User-Agent": "facebookexternalua"}
    if signature == "sign":
        signature = sign256(body, secret)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return http_request(WHATSAPP_PATH, body, headers)


def rest_request(sender: str, text: str, metadata: dict | None = None) -> bytes:
    body: dict[str, Any] = {"sender": sender, "message": text}
    if metadata is not None:
        body["metadata"] = metadata
    return http_request(REST_PATH, json.dumps(body).encode())


def whatsapp_like_metadata(sender: str, wamid: str, text: str) -> dict:
    """The ``metadata`` the WhatsApp channel gives a text message (to load REST the same way)."""
    from whatsapp_core.normalize import normalize
    from whatsapp_core.webhook import WebhookEnvelope

    envelope = WebhookEnvelope.parse(meta_json(whatsapp_envelope([text_message(wamid, sender,
                                                                               text)])))
    change, message = envelope.messages[0]
    return normalize(message, change.contact_for(message), change.business,
                     received_at=int(time.time())).metadata


def facebook_request(sender: str, mid: str, text: str, secret: str) -> bytes:
    body = json.dumps(messenger_body(sender, mid, text)).encode()
    return http_request(FACEBOOK_PATH, body, {"X-Hub-Signature": sign1(body, secret)})


def text_for(index: int, texts: Iterable[str] = TEXTS) -> str:
    options = tuple(texts)
    return options[index % len(options)]
