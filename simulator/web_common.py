"""Helpers shared by the Graph API and control API route modules."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from simulator.engine import CloudApiSimulator

SIMULATOR = web.AppKey("simulator", CloudApiSimulator)


def simulator(request: web.Request) -> CloudApiSimulator:
    return request.app[SIMULATOR]


def base_url(request: web.Request) -> str:
    """``scheme://host:port`` of this server as the client reached it."""
    return f"{request.scheme}://{request.host}"


async def read_json(request: web.Request) -> Any | None:
    """The parsed JSON body (UTF-8, as Meta requires), or None if it is not valid JSON.
    Parsed from the bytes: aiohttp's ``request.json()`` first parses the Content-Type
    header with the ``email`` package for the charset, which cost more than the JSON."""
    try:
        return json.loads(await request.read())
    except ValueError:
        return None
