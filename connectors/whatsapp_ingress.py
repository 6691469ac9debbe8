"""The ingress process: the WhatsApp webhook on its own port and core (``ingress_port``).

Started and supervised by the channel inside ``rasa run``
(:class:`whatsapp_core.ingress.IngressProcess`), never by hand. Reads its settings as
one JSON object on standard input (``credentials``: the channel's credentials.yml entry
after ``${VAR}`` substitution; ``store_url``; ``instance_id``: the Rasa process's, so the
messages accepted here are held by it; ``link``: the Unix socket to the Rasa process;
``log_level``). Serves the same routes as Rasa's port (:mod:`connectors.webhook_routes`)
with the same acceptor, forwards what it accepted, delivers the replies the Rasa process
hands it (Graph API sends, read receipts, media uploads), and exits on SIGTERM or when
the Rasa process is gone. Imports Sanic and the core only, not Rasa: it starts in about a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any

from sanic import Blueprint, Sanic

from connectors.webhook_routes import add_webhook_routes
from whatsapp_core.acceptor import WebhookAcceptor, WebhookResult
from whatsapp_core.config import ChannelConfig
from whatsapp_core.graph_client import GraphClient
from whatsapp_core.ingress import IngressLink
from whatsapp_core.sender import channel_sender
from whatsapp_core.status_spool import StatusSpool
from whatsapp_core.store import WhatsAppStore

logger = logging.getLogger("whatsapp_ingress")


async def serve(settings: dict[str, Any]) -> None:
    """Serve until SIGTERM/SIGINT or until the link to the Rasa process closes."""
    config = ChannelConfig.from_credentials(settings["credentials"])
    store = WhatsAppStore(settings["store_url"], instance_id=settings["instance_id"])
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

    async def receive(_request: Any, body: bytes, signature: str | None) -> WebhookResult:
        accepted = await acceptor.accept(body, signature)
        link.forward(accepted.new, accepted.failures)
        return accepted.result

    app = Sanic("whatsapp_ingress", configure_logging=False)
    blueprint = Blueprint("whatsapp_ingress", url_prefix="/webhooks/whatsapp")
    add_webhook_routes(blueprint, config.verify_token, receive)
    app.blueprint(blueprint)
    server = await app.create_server(
        host=config.ingress_host,
        port=config.ingress_port,
        return_asyncio_server=True,
        access_log=False,
    )
    await server.startup()
    await server.start_serving()
    await link.connect(config.ingress_host, config.ingress_port)

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
    server.close()
    await server.wait_closed()
    await acceptor.wait_applied()
    await acceptor.stop()
    await sender.stop()  # what is not sent stays queued in the outbox, for recovery
    await graph.close()
    await loop.run_in_executor(None, store.close)


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
