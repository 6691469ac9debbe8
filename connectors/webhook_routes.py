"""The webhook's HTTP routes, served on Rasa's port (Sanic, :func:`add_webhook_routes`)
and by the ingress process (:mod:`connectors.ingress_http`) alike.

No Rasa import, so the ingress process stays light. Under the prefix
(``/webhooks/whatsapp``): ``GET /`` health, ``GET /webhook`` Meta's verification
handshake (:func:`verification_answer`), ``POST /webhook`` webhooks
(:func:`webhook_answer`). A POST is answered with what ``receive`` returns; a body over
4 MB is a 413, and an exception while accepting a 503 (Meta retries it; a 500 would say
the request was wrong).
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
        status, text = verification_answer(request.args.get, verify_token)
        return response.text(text, status=status)

    @blueprint.route("/webhook", methods=["POST"])
    async def webhook(request: Request) -> HTTPResponse:
        status, text = await webhook_answer(
            request.headers.get("content-length"),
            lambda: receive(request, request.body or b"", request.headers.get(SIGNATURE_HEADER)),
        )
        return response.text(text, status=status)


def verification_answer(
    arg: Callable[[str], str | None], verify_token: str
) -> tuple[int, str]:
    """(status, text) of Meta's verification handshake, ``arg`` reading a query argument:
    the challenge when ``hub.mode`` is ``subscribe`` and the token matches, else a 403."""
    mode = arg("hub.mode")
    if mode == "subscribe" and _same(arg("hub.verify_token") or "", verify_token):
        return 200, arg("hub.challenge") or ""
    logger.warning("WhatsApp webhook verification refused (mode=%s)", mode)
    return 403, "verification failed"


async def webhook_answer(
    content_length: str | None, accept: Callable[[], Awaitable[WebhookResult]]
) -> tuple[int, str]:
    """(status, text) of a webhook POST: :func:`refused_size`, else what ``accept``
    returns, or :func:`unavailable` when it raises."""
    refused = refused_size(content_length)
    if refused is not None:
        return refused
    try:
        result = await accept()
    except Exception:  # noqa: BLE001 - see unavailable()
        return unavailable()
    return result.http_status, result.reason


def refused_size(content_length: str | None) -> tuple[int, str] | None:
    """A 413 (logged) when the declared body is over the limit, else None."""
    if content_length and content_length.isdigit() and int(content_length) > MAX_BODY_BYTES:
        logger.warning("WhatsApp webhook refused: body of %s bytes", content_length)
        return 413, "payload too large"
    return None


def unavailable() -> tuple[int, str]:
    """The answer when accepting a webhook raised (call it in the ``except``: it logs
    the exception): a 503, which Meta retries; a 500 would say the request was wrong."""
    logger.exception("WhatsApp webhook could not be accepted; Meta will retry")
    return 503, "temporarily unavailable"


def _reject_invalid_content_length(request: Request) -> None:
    value = request.headers.get("content-length")
    if value is not None and not (value.isascii() and value.isdigit()):
        logger.warning("HTTP request refused: invalid Content-Length")
        raise InvalidUsage("invalid Content-Length")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
