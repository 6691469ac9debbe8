"""CPU per status webhook in the ingress process's pipeline, piece by piece, in-process
(diagnostics; docs/benchmarks.md, third session).

20,000 signed single-status webhooks are fed to the ingress HTTP server's protocol objects
(32 connections, no sockets) with the real webhook endpoint, store (SQLite) and spool, and
the process's CPU time is divided by the count. Variants, each adding one piece:

- ``http``: the server answers a constant 200;
- ``verify``: + the signature check;
- ``parse``: + the typed parse;
- ``spool``: + the spool append;
- ``full``: the real endpoint (accept, answer), with the statuses applied as in production
  (SQLite: on the event loop);
- ``thread``: ``full`` with the statuses applied on the store's thread instead.

    .venv/bin/python -m bench.ingress_costs [variant ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import tempfile
import time
from pathlib import Path

import uvloop

from bench import payloads
from connectors.ingress_http import HttpAnswer, IngressHttpServer, _Connection
from connectors.whatsapp_ingress import WebhookEndpoint, route
from whatsapp_core.acceptor import WebhookAcceptor
from whatsapp_core.config import ChannelConfig
from whatsapp_core.signature import verify_signature
from whatsapp_core.status_spool import StatusSpool
from whatsapp_core.store import WhatsAppStore
from whatsapp_core.webhook import MAX_BODY_BYTES, WebhookEnvelope

SECRET = "bench-secret"
VARIANTS = ("http", "verify", "parse", "spool", "full", "thread")
OK = HttpAnswer.text(200, "ok")


class _Transport:
    """What the protocol writes to: nothing."""

    def write(self, _data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def measure(variant: str, count: int) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="wa-ingress-costs-"))
    config = ChannelConfig.from_credentials({
        "verify_token": "v", "app_secret": SECRET, "access_token": "t",
        "phone_number_id": payloads.PHONE_NUMBER_ID, "api_base_url": "http://127.0.0.1:9",
        "store_url": f"sqlite:///{tmp / 'store.db'}", "status_spool_dir": str(tmp / "spool"),
    })
    store = WhatsAppStore(config.store_url, instance_id="bench")
    if variant == "thread":
        store._loop_writer = None  # apply_statuses falls back to the store's thread
    spool = StatusSpool(config.status_spool_dir)
    acceptor = WebhookAcceptor(config, store, spool)
    if variant in ("full", "thread"):
        acceptor.start()
    else:
        spool.open()
    endpoint = WebhookEndpoint(acceptor, lambda _accepted: None)

    def handle(request):  # type: ignore[no-untyped-def]
        if variant in ("full", "thread"):
            return route(request, config.verify_token, endpoint)
        if variant != "http":
            verify_signature(request.body, request.headers.get("x-hub-signature-256"), SECRET)
        if variant in ("parse", "spool"):
            WebhookEnvelope.parse(request.body)
        if variant == "spool":
            spool.append(request.body)
        return OK

    requests = [
        payloads.whatsapp_request(
            payloads.whatsapp_envelope(
                statuses=[payloads.status(f"wamid.c{n}", "111", "delivered")]
            ),
            SECRET,
        )
        for n in range(count)
    ]
    server = IngressHttpServer(handle, max_body_bytes=MAX_BODY_BYTES)
    connections = [_Connection(server) for _ in range(32)]
    for connection in connections:
        connection.connection_made(_Transport())
    gc.collect()
    gc.freeze()  # as the ingress process does after start-up
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.process_time()
    for start in range(0, count, 32):
        for connection, request in zip(connections, requests[start : start + 32], strict=False):
            connection.data_received(request)
        await asyncio.sleep(0)
        busy = [c.worker for c in connections if c.worker is not None]
        if busy:
            await asyncio.gather(*busy)
    await acceptor.wait_applied()
    cpu = time.process_time() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    await acceptor.stop()
    store.close()
    gc.unfreeze()
    return (
        f"{variant:7s} {cpu / count * 1e6:6.1f} us of CPU per webhook "
        f"(system {(after.ru_stime - usage.ru_stime) / count * 1e6:5.1f} us, "
        f"voluntary context switches {(after.ru_nvcsw - usage.ru_nvcsw) / count:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="*", help=f"any of {', '.join(VARIANTS)} (all)")
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    uvloop.install()
    for variant in args.variants or VARIANTS:
        print(asyncio.run(measure(variant, args.count)), flush=True)


if __name__ == "__main__":
    main()
