"""A round-robin HTTP reverse proxy on loopback: each request goes to the next backend.

    python bench/rr_proxy.py --port 8080 --backend http://127.0.0.1:5005 --backend ...

Stands in for the load balancer in front of several ``rasa run`` instances. ``GET
/_proxy/stats`` answers requests per backend.
"""

from __future__ import annotations

import argparse
import itertools

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def build(backends: list[str]) -> web.Application:
    cycle = itertools.cycle(range(len(backends)))
    counts = [0] * len(backends)
    app = web.Application(client_max_size=8 * 1024 * 1024)

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(limit=200)
        )

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({"backends": backends, "requests": counts})

    async def forward(request: web.Request) -> web.StreamResponse:
        index = next(cycle)
        counts[index] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        try:
            async with app["session"].request(
                request.method, backends[index] + request.path_qs, headers=headers, data=body
            ) as answer:
                payload = await answer.read()
                out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=answer.status, body=payload, headers=out)
        except (aiohttp.ClientError, TimeoutError):
            return web.Response(status=502, text="backend unavailable")

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_get("/_proxy/stats", stats)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", action="append", required=True)
    args = parser.parse_args()
    web.run_app(build(args.backend), host="127.0.0.1", port=args.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
