"""The aiohttp application: Graph API routes, control routes, fault and error middleware.

``create_app(config)`` returns an app that tests can run in-process (aiohttp test utilities or
``web.AppRunner``); ``python -m simulator`` serves the same app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.control_api import add_control_routes
from simulator.engine import CloudApiSimulator
from simulator.errors import ControlError, GraphError
from simulator.faults import SERVER_ERROR_CODES
from simulator.graph_api import add_graph_routes
from simulator.web_common import SIMULATOR

# Uploads go up to Meta's 100 MB document cap.
MAX_REQUEST_BYTES = 101 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def simulator_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every request; applies faults to Graph routes; renders GraphError/ControlError.

    Graph fault order: latency, then a dropped connection, then a server error, then the
    handler (which applies throttling to sends after the bearer check).
    """
    sim = request.app[SIMULATOR]
    route = request.match_info.route.name or "unmatched"
    sim.stats.requests[route] += 1
    if not route.startswith("graph."):
        try:
            return await handler(request)
        except ControlError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    faults = sim.faults
    if faults.latency_ms:
        sim.stats.faults_served["latency"] += 1
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.take_drop():
        sim.stats.faults_served["drop_connection"] += 1
        if request.transport is not None:
            request.transport.close()
        return web.Response()
    server_error = faults.take_server_error()
    if server_error is not None:
        sim.stats.faults_served["server_error"] += 1
        error = GraphError(
            SERVER_ERROR_CODES[server_error],
            "Injected server error; retry later.",
            http_status=server_error,
        )
        return web.json_response(error.body(), status=server_error)
    try:
        return await handler(request)
    except GraphError as exc:
        sim.stats.rejected[int(exc.code)] += 1
        return web.json_response(exc.body(), status=exc.http_status)


def create_app(config: SimulatorConfig) -> web.Application:
    """Build the simulator app; its :class:`CloudApiSimulator` is ``app[SIMULATOR]``."""
    app = web.Application(middlewares=[simulator_middleware], client_max_size=MAX_REQUEST_BYTES)
    sim = CloudApiSimulator(config)
    app[SIMULATOR] = sim
    add_control_routes(app)
    add_graph_routes(app)

    async def start(_: web.Application) -> None:
        await sim.start()

    async def stop_background_work(_: web.Application) -> None:
        # on_shutdown runs before run_app waits for all pending tasks: pending status
        # emissions and webhook retries must not hold the process up.
        await sim.webhooks.cancel_all()

    async def stop(_: web.Application) -> None:
        await sim.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop_background_work)
    app.on_cleanup.append(stop)
    return app
