"""A stand-in for the Messenger Send API on loopback: answers every POST like Meta, counts.

``POST /<anything>/me/messages`` -> ``{"recipient_id", "message_id"}`` (or ``{"recipient_id"}``
for sender actions); ``GET /_stats`` -> counts; ``POST /_reset``. Also ``POST /sink``
answers 200 (a webhook target that discards what it gets).
"""

from __future__ import annotations

import argparse
import itertools
import json

from aiohttp import web

COUNTS = {"messages": 0, "actions": 0, "sink": 0}
_ids = itertools.count(1)


async def send(request: web.Request) -> web.Response:
    body = await request.json()
    recipient = (body.get("recipient") or {}).get("id", "")
    if "sender_action" in body:
        COUNTS["actions"] += 1
        return web.json_response({"recipient_id": recipient})
    COUNTS["messages"] += 1
    return web.json_response({"recipient_id": recipient, "message_id": f"m_{next(_ids)}"})


async def sink(request: web.Request) -> web.Response:
    await request.read()
    COUNTS["sink"] += 1
    return web.Response(text="ok")


async def stats(_request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(COUNTS), content_type="application/json")


async def reset(_request: web.Request) -> web.Response:
    for key in COUNTS:
        COUNTS[key] = 0
    return web.json_response(COUNTS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/sink", sink)
    app.router.add_post("/{version}/me/messages", send)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
