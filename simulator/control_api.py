"""Control API under ``/_sim/`` (JSON, no auth) for tests and demos.

Bad requests answer 400 ``{"error": "<reason>"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from simulator.errors import ControlError
from simulator.web_common import base_url, read_json, simulator


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    return body


def _optional_string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ControlError(f"'{key}' must be a string")
    return value


async def post_inbound(request: web.Request) -> web.Response:
    """Play a contact's message; answers ``{wamid, timestamp, webhook_status, deliveries,
    media_id?}`` after the bot answered."""
    result = await simulator(request).play_inbound(await read_json(request), base_url(request))
    return web.json_response(result)


async def post_webhook(request: web.Request) -> web.Response:
    """Forward the raw request body to the bot as a webhook, once. Query: ``sign=false`` to
    omit the signature, ``secret=...`` to sign with another secret."""
    result = await simulator(request).post_raw_webhook(
        await request.read(),
        signed=request.query.get("sign", "true").lower() != "false",
        secret=request.query.get("secret"),
    )
    return web.json_response(result)


async def post_verify(request: web.Request) -> web.Response:
    """Run Meta's GET verification handshake: ``{"verify_token", "challenge"?}``."""
    body = await _json_object(request)
    verify_token = _optional_string(body, "verify_token")
    if verify_token is None:
        raise ControlError("'verify_token' is required")
    result = await simulator(request).verify_webhook(
        verify_token, _optional_string(body, "challenge")
    )
    return web.json_response(result)


async def get_messages(request: web.Request) -> web.Response:
    """``?to=<wa_id>&phone_number_id=``: what contacts received, in send order."""
    records = simulator(request).state.messages(
        request.query.get("to"), request.query.get("phone_number_id")
    )
    return web.json_response({"messages": [record.to_json() for record in records]})


async def get_read_receipts(request: web.Request) -> web.Response:
    """``?contact=<wa_id>``: marks-as-read and typing indicators the business sent."""
    contact = request.query.get("contact")
    receipts = [
        receipt.to_json()
        for receipt in simulator(request).state.read_receipts
        if contact is None or receipt.contact == contact
    ]
    return web.json_response({"read_receipts": receipts})


def _clock_json(request: web.Request) -> dict[str, Any]:
    now = simulator(request).clock.now()
    return {"now": now, "timestamp": int(now)}


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_json(request))


async def post_clock(request: web.Request) -> web.Response:
    """``{"advance_seconds": N}`` (N >= 0) or ``{"set": unix_time}``."""
    body = await _json_object(request)
    clock = simulator(request).clock
    if "advance_seconds" in body:
        value = body["advance_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ControlError("'advance_seconds' must be a number >= 0")
        clock.advance(float(value))
    elif "set" in body:
        value = body["set"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ControlError("'set' must be a unix time")
        clock.set(float(value))
    else:
        raise ControlError("give 'advance_seconds' or 'set'")
    return web.json_response(_clock_json(request))


async def get_contact(request: web.Request) -> web.Response:
    return web.json_response(simulator(request).contact_info(request.match_info["wa_id"]))


async def post_contact(request: web.Request) -> web.Response:
    """``{"behaviour"?: "online"|"offline"|..., "name"?: "..."}``."""
    body = await _json_object(request)
    result = simulator(request).set_contact(
        request.match_info["wa_id"],
        behaviour=_optional_string(body, "behaviour"),
        name=_optional_string(body, "name"),
    )
    return web.json_response(result)


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(simulator(request).faults.to_json())


async def post_faults(request: web.Request) -> web.Response:
    """Add faults (see :class:`simulator.faults.FaultPlan`); answers the active faults."""
    faults = simulator(request).faults
    try:
        faults.apply(await _json_object(request))
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    return web.json_response(faults.to_json())


async def delete_faults(request: web.Request) -> web.Response:
    faults = simulator(request).faults
    faults.clear()
    return web.json_response(faults.to_json())


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(simulator(request).stats.to_json())


async def get_pending(request: web.Request) -> web.Response:
    """``{"pending": n}``: background webhook work (statuses, retries) still running."""
    return web.json_response({"pending": simulator(request).webhooks.pending})


async def post_templates(request: web.Request) -> web.Response:
    """Add or replace a template (listing shape); a status change sends
    ``message_template_status_update``."""
    result = await simulator(request).upsert_template(await read_json(request))
    return web.json_response(result)


async def post_config(request: web.Request) -> web.Response:
    """``{"webhook_url": "http://..."}`` (``""`` or null disables delivery): where webhooks go
    from now on. Answers ``{"webhook_url"}``."""
    body = await _json_object(request)
    if set(body) != {"webhook_url"}:
        raise ControlError("give exactly 'webhook_url'")
    url = _optional_string(body, "webhook_url")
    if url and not url.startswith(("http://", "https://")):
        raise ControlError("'webhook_url' must be an http(s) URL, or empty to disable")
    return web.json_response({"webhook_url": simulator(request).set_webhook_url(url)})


async def post_reset(request: web.Request) -> web.Response:
    await simulator(request).reset()
    return web.json_response({"reset": True})


def add_control_routes(app: web.Application) -> None:
    """Register the ``/_sim/`` routes; names start with ``control.``."""
    routes = [
        ("POST", "/_sim/inbound", post_inbound),
        ("POST", "/_sim/webhook", post_webhook),
        ("POST", "/_sim/verify", post_verify),
        ("GET", "/_sim/messages", get_messages),
        ("GET", "/_sim/read_receipts", get_read_receipts),
        ("GET", "/_sim/clock", get_clock),
        ("POST", "/_sim/clock", post_clock),
        ("GET", "/_sim/contacts/{wa_id}", get_contact),
        ("POST", "/_sim/contacts/{wa_id}", post_contact),
        ("GET", "/_sim/faults", get_faults),
        ("POST", "/_sim/faults", post_faults),
        ("DELETE", "/_sim/faults", delete_faults),
        ("GET", "/_sim/stats", get_stats),
        ("GET", "/_sim/pending", get_pending),
        ("POST", "/_sim/templates", post_templates),
        ("POST", "/_sim/config", post_config),
        ("POST", "/_sim/reset", post_reset),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler, name=f"control.{handler.__name__}")
