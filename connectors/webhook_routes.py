"""The webhook's HTTP routes, served on Rasa's port and by the ingress process alike.

Sanic only (no Rasa import), so the ingress process stays light. Under the blueprint's
prefix (``/webhooks/whatsapp``): ``GET /`` health, ``GET /webhook`` Meta's verification
handshake, ``POST /webhook`` webhooks. A POST is answered with what ``receive`` returns;
a body over 4 MB is a 413, and an exception while accepting a 503 (Meta retries it; a
500 would say the request was wrong).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from sanic import Blueprint, response
from sanic.exceptions import InvalidUsage
from sanic.request import Request
from sanic.response import HTTPResponse

from whatsapp_core.acceptor import WebhookResult
from whatsapp_core.signature import SIGNATURE_HEADER
from whatsapp_core.webhook import MAX_BODY_BYTES

logger = logging.getLogger(__name__)

Receive = Callable[[Request, bytes, "str | None"], Awaitable[WebhookResult]]
"""``receive(request, body, signature)``: accept one webhook POST."""


def add_webhook_routes(blueprint: Blueprint, verify_token: str, receive: Receive) -> None:
    """Add the health, handshake and webhook routes to ``blueprint``."""
    # Sanic 21.12 answers a non-numeric Content-Length with a 500 and spins forever on
    # a negative one (before any route runs): refuse both with a 400 first.
    blueprint.signal("http.lifecycle.request")(_reject_invalid_content_length)

    @blueprint.route("/", methods=["GET"])
    async def health(_request: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @blueprint.route("/webhook", methods=["GET"])
    async def verify(request: Request) -> HTTPResponse:
        mode = request.args.get("hub.mode")
        token = request.args.get("hub.verify_token") or ""
        challenge = request.args.get("hub.challenge") or ""
        if mode == "subscribe" and _same(token, verify_token):
            return response.text(challenge)
        logger.warning("WhatsApp webhook verification refused (mode=%s)", mode)
        return response.text("verification failed", status=403)

    @blueprint.route("/webhook", methods=["POST"])
    async def webhook(request: Request) -> HTTPResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            logger.warning("WhatsApp webhook refused: body of %s bytes", declared)
            return response.text("payload too large", status=413)
        try:
            signature = request.headers.get(SIGNATURE_HEADER)
            result = await receive(request, request.body or b"", signature)
        except Exception:  # noqa: BLE001 - Meta retries a 503; a 500 would say "our bug"
            logger.exception("WhatsApp webhook could not be accepted; Meta will retry")
            return response.text("temporarily unavailable", status=503)
        return response.text(result.reason, status=result.http_status)


def _reject_invalid_content_length(request: Request) -> None:
    value = request.headers.get("content-length")
    if value is not None and not (value.isascii() and value.isdigit()):
        logger.warning("HTTP request refused: invalid Content-Length")
        raise InvalidUsage("invalid Content-Length")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
