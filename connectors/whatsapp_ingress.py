"""The ingress process: the WhatsApp webhook on its own port and core (``ingress_port``).

Started and supervised by the channel inside ``rasa run``
(:class:`whatsapp_core.ingress.IngressProcess`), never by hand. Reads its settings as
one JSON object on standard input (``credentials``: the channel's credentials.yml entry
after ``${VAR}`` substitution; ``store_url``; ``instance_id``: the Rasa process's, so the
messages accepted here are held by it; ``link``: the Unix socket to the Rasa process;
``log_level``). Serves the same routes as Rasa's port (:mod:`connectors.webhook_routes`)
with the same acceptor, on its own lean HTTP server (:mod:`connectors.ingress_http`),
forwards what it accepted, delivers the replies the Rasa process hands it (Graph API
sends, read receipts, media uploads), and exits on SIGTERM or when the Rasa process is
gone. Imports the core only, not Rasa: it starts in about a second.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from connectors.ingress_http import HttpAnswer, HttpRequest, IngressHttpServer
from connectors.webhook_routes import refused_size, unavailable, verification_answer
from whatsapp_core.acceptor import Accepted, WebhookAcceptor
from whatsapp_core.config import ChannelConfig
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.ingress import IngressLink
from whatsapp_core.sender import channel_sender
from whatsapp_core.signature import SIGNATURE_HEADER
from whatsapp_core.status_spool import StatusSpool
from whatsapp_core.store import WhatsAppStore
from whatsapp_core.webhook import MAX_BODY_BYTES, WebhookEnvelope

logger = logging.getLogger("whatsapp_ingress")

PREFIX = "/webhooks/whatsapp"
WEBHOOK_PATH = PREFIX + "/webhook"
HEALTH_PATHS = (PREFIX, PREFIX + "/")
SIGNATURE = SIGNATURE_HEADER.lower()  # the server gives header names in lower case


async def serve(settings: dict[str, Any]) -> None:
    """Serve until SIGTERM/SIGINT or until the link to the Rasa process closes."""
    config = ChannelConfig.from_credentials(settings["credentials"])
    store = WhatsAppStore(
        settings["store_url"], instance_id=settings["instance_id"], webhooks_on_loop=True
    )
    graph = GraphClient(
        config.api_base_url, config.api_version, timeout=config.send_timeout_seconds
    )
    link = IngressLink(settings["link"], lambda jobs: sender.resume(jobs))
    sender = channel_sender(
        config,
        store,
        graph,
        settings["store_url"],
        on_template_failure=link.template_failure,
        schedules_follow_ups=False,
    )
    sender.start(renew_every_seconds=config.recovery_lease_seconds / 2)
    spool = StatusSpool(config.status_spool_dir) if config.status_spool_dir else None
    acceptor = WebhookAcceptor(config, store, spool, on_failures=lambda f: link.forward([], f))
    acceptor.start()

    webhook = WebhookEndpoint(acceptor, lambda a: link.forward(a.new, a.failures))
    server = IngressHttpServer(
        lambda request: route(request, config.verify_token, webhook),
        max_body_bytes=MAX_BODY_BYTES,
    )
    await server.start(config.ingress_host, config.ingress_port)
    await link.connect(config.ingress_host, config.ingress_port)
    # What is alive now (modules, engine, config) lives as long as the process: out of
    # the collector's sight, full collections no longer walk it (~10 % CPU per webhook);
    # and a webhook's garbage is freed by reference counting, so collections can be rarer.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(link.closed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    if link.closed.is_set():
        logger.warning("WhatsApp ingress: the Rasa process is gone; stopping")
    await server.stop()
    await acceptor.wait_applied()
    await acceptor.stop()
    await sender.stop()  # what is not sent stays queued in the outbox, for recovery
    await graph.close()
    await loop.run_in_executor(None, store.close)


class WebhookEndpoint:
    """``POST /webhook`` on the ingress process's server. Answered at once when nothing
    needs waiting for (a refusal, statuses appended to the spool), else by a coroutine
    that records the webhook; ``forward`` gets what was accepted (new contact messages,
    delivery failures) for the Rasa process."""

    def __init__(self, acceptor: WebhookAcceptor, forward: Callable[[Accepted], None]) -> None:
        self.acceptor = acceptor
        self.forward = forward

    def __call__(self, request: HttpRequest) -> HttpAnswer | Awaitable[HttpAnswer]:
        refused = refused_size(request.headers.get("content-length"))
        if refused is not None:
            return HttpAnswer.text(*refused)
        try:
            checked = self.acceptor.check(request.body, request.headers.get(SIGNATURE))
        except Exception:  # noqa: BLE001 - see unavailable()
            return HttpAnswer.text(*unavailable())
        if isinstance(checked, Accepted):
            return self._answer(checked)
        return self._record(checked)

    async def _record(self, envelope: WebhookEnvelope) -> HttpAnswer:
        try:
            return self._answer(await self.acceptor.record(envelope))
        except Exception:  # noqa: BLE001 - see unavailable()
            return HttpAnswer.text(*unavailable())

    def _answer(self, accepted: Accepted) -> HttpAnswer:
        self.forward(accepted)
        return HttpAnswer.text(accepted.result.http_status, accepted.result.reason)


def route(
    request: HttpRequest,
    verify_token: str,
    webhook: Callable[[HttpRequest], HttpAnswer | Awaitable[HttpAnswer]],
) -> HttpAnswer | Awaitable[HttpAnswer]:
    """The routes of :mod:`connectors.webhook_routes`, on the ingress process's server
    (``webhook`` answers the POSTs)."""
    if request.path == WEBHOOK_PATH:
        if request.method == "POST":
            return webhook(request)
        if request.method == "GET":
            args = parse_qs(request.query, errors="replace")
            return HttpAnswer.text(
                *verification_answer(lambda name: (args.get(name) or [None])[0], verify_token)
            )
        return HttpAnswer(405, b"method not allowed", allow="GET, POST")
    if request.path in HEALTH_PATHS:
        if request.method == "GET":
            return HttpAnswer(200, b'{"status":"ok"}', "application/json")
        return HttpAnswer(405, b"method not allowed", allow="GET")
    return HttpAnswer(404, b"not found")


def main() -> int:
    settings = json.loads(sys.stdin.read())
    logging.basicConfig(
        level=settings.get("log_level", "INFO"),
        format="%(asctime)s [%(levelname)-8s] %(name)s (ingress process) - %(message)s",
    )
    try:
        import uvloop  # installed with Sanic; the loop Sanic itself would pick
    except ImportError:
        pass
    else:
        uvloop.install()
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
