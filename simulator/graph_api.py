"""Graph API routes (what the connector calls instead of graph.facebook.com).

Every route accepts any version prefix such as ``/v21.0`` or ``/v23.0`` and requires
``Authorization: Bearer <access token>``. Errors are Meta-shaped (see :mod:`simulator.errors`).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from yarl import URL

from simulator.errors import ErrorCode, GraphError
from simulator.faults import Throttle
from simulator.web_common import base_url, read_json, simulator

VERSION = r"{version:v\d+\.\d+}"

THROTTLE_DETAILS: dict[ErrorCode, str] = {
    ErrorCode.THROUGHPUT_RATE_LIMIT: "Cloud API message throughput has been reached.",
    ErrorCode.PAIR_RATE_LIMIT: (
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time."
    ),
    ErrorCode.WABA_RATE_LIMIT: "The WhatsApp Business Account has reached its rate limit.",
}


def throttle_response(throttle: Throttle) -> web.Response:
    """The answer to a throttled send (an injected fault, not counted as a rejection)."""
    error = GraphError(
        throttle.code, THROTTLE_DETAILS[throttle.code], http_status=throttle.http_status
    )
    return web.json_response(error.body(), status=error.http_status)


def _authorize(request: web.Request) -> None:
    """Bearer header, or Graph's ``access_token`` query parameter."""
    header = request.headers.get("Authorization")
    if header is None and "access_token" in request.query:
        header = f"Bearer {request.query['access_token']}"
    simulator(request).authorize(header)


async def post_messages(request: web.Request) -> web.Response:
    """``POST /{version}/{phone_number_id}/messages``: send, or mark as read."""
    sim = simulator(request)
    _authorize(request)
    phone = sim.sender(request.match_info["phone_number_id"])
    throttle = sim.faults.take_throttle()
    if throttle is not None:
        sim.stats.faults_served["throttle"] += 1
        return throttle_response(throttle)
    body = await read_json(request)
    if body is None:
        raise GraphError(ErrorCode.INVALID_PARAMETER, "The request body is not valid JSON.")
    return web.json_response(sim.handle_messages(phone, body))


async def post_media(request: web.Request) -> web.Response:
    """``POST /{version}/{phone_number_id}/media``: multipart upload (messaging_product,
    file, type) -> ``{"id": media_id}``."""
    sim = simulator(request)
    _authorize(request)
    sim.sender(request.match_info["phone_number_id"])
    if not request.content_type.startswith("multipart/"):
        raise GraphError(
            ErrorCode.INVALID_PARAMETER, "Media must be uploaded as multipart/form-data."
        )
    fields: dict[str, str] = {}
    data: bytes | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if part.name == "file" and hasattr(part, "filename"):
            data = bytes(await part.read(decode=False))
        elif part.name and hasattr(part, "text"):
            fields[part.name] = await part.text()
    return web.json_response(
        sim.upload_media(
            messaging_product=fields.get("messaging_product"),
            data=data,
            mime_type=fields.get("type"),
        )
    )


async def get_media(request: web.Request) -> web.Response:
    """``GET /{version}/{media_id}``: metadata and a download URL valid 5 simulated minutes."""
    _authorize(request)
    metadata = simulator(request).media_metadata(request.match_info["media_id"], base_url(request))
    return web.json_response(metadata)


async def download_media(request: web.Request) -> web.Response:
    """``GET /whatsapp_business/attachments/?mid=&ext=&hash=``: the bytes; bearer required
    (401 without), 404 when the URL is unknown or expired."""
    _authorize(request)
    item = simulator(request).download(request.query.get("mid", ""), request.query.get("hash", ""))
    if item is None:
        raise web.HTTPNotFound(text="media URL is unknown or has expired")
    return web.Response(body=item.data, headers={"Content-Type": item.mime_type})


def _page_url(request: web.Request) -> Callable[[dict[str, str]], str]:
    """Builds this listing's URL with new paging parameters (for ``next``/``previous``)."""

    def build(update: dict[str, str]) -> str:
        kept = {k: v for k, v in request.query.items() if k not in ("after", "before")}
        url = URL(base_url(request)).with_path(request.path)
        return str(url.with_query({**kept, **update}))

    return build


async def get_templates(request: web.Request) -> web.Response:
    """``GET /{version}/{waba_id}/message_templates``: paged template listing."""
    _authorize(request)
    listing = simulator(request).list_templates(
        request.match_info["waba_id"], request.query, _page_url(request)
    )
    return web.json_response(listing)


def add_graph_routes(app: web.Application) -> None:
    """Register the Graph API routes; names start with ``graph.`` (faults apply to them)."""
    app.router.add_post(
        f"/{VERSION}/{{phone_number_id}}/messages", post_messages, name="graph.messages"
    )
    app.router.add_post(
        f"/{VERSION}/{{phone_number_id}}/media", post_media, name="graph.media_upload"
    )
    app.router.add_get(
        f"/{VERSION}/{{waba_id}}/message_templates", get_templates, name="graph.templates"
    )
    app.router.add_get(f"/{VERSION}/{{media_id}}", get_media, name="graph.media")
    app.router.add_get(
        "/whatsapp_business/attachments/", download_media, name="graph.media_download"
    )
