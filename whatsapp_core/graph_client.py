"""Async client for the Graph API calls of a WhatsApp reply: send a message, mark as read;
and of media: look up, download and upload files.

One shared ``aiohttp.ClientSession`` (created lazily inside the running event loop, with a
pooled keep-alive connector) serves every call. A call never raises for what Meta or the
network does: it returns a :class:`SendResult` holding either the message id or a
:class:`GraphError`, after retrying what the error catalogue (``whatsapp_core.errors``) says a
retry can fix, within a :class:`~whatsapp_core.retry.RetryPolicy`.

Meta's error answer: ``{"error": {"message", "type", "code", "error_subcode",
"error_data": {"details"}, "fbtrace_id"}}`` (fact sheet section 6).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Generic, TypeVar
from urllib.parse import quote

import aiohttp

from whatsapp_core.errors import ErrorFamily, ErrorInfo, RetryScope, lookup
from whatsapp_core.masking import mask_phone
from whatsapp_core.retry import RetryPolicy

logger = logging.getLogger(__name__)

_CONNECTION_LIMIT = 100
_KEEPALIVE_SECONDS = 30.0
_DETAILS_MAX = 300
_CHUNK = 64 * 1024

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GraphError:
    """Why a Graph API call failed.

    Fields:
        code: Meta's ``error.code``; ``None`` for network failures and answers without one.
        title: Meta's ``error.message``, or a short description of the failure.
        details: Meta's ``error.error_data.details`` (or the start of an unparsable body, or
            the network exception); ``""`` when none.
        http_status: The HTTP status; ``None`` when no answer arrived.
        subcode: Meta's ``error.error_subcode``, if any.
        fbtrace_id: Meta's trace id, to quote in a support ticket.
        network: ``True`` when no answer arrived (timeout, connection error).
    """

    code: int | None
    title: str
    details: str
    http_status: int | None
    subcode: int | None = None
    fbtrace_id: str | None = None
    network: bool = False

    @property
    def info(self) -> ErrorInfo:
        """The catalogue record for :attr:`code` (a generic record when unknown or None)."""
        return lookup(self.code)


@dataclass(frozen=True, slots=True)
class SendResult:
    """Outcome of one Graph API call, retries included.

    Fields:
        wamid: The id Meta gave the sent message (``messages[0].id``); ``None`` on failure
            and for calls that create no message (mark as read).
        error: Why the call failed, or ``None`` on success.
        attempts: HTTP attempts made (at least 1).
        raw: The JSON answer of the last attempt, or ``None`` when there was none or it was
            not JSON.
    """

    wamid: str | None
    error: GraphError | None
    attempts: int
    raw: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """``True`` when Meta accepted the call (a 200 is acceptance, not delivery)."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class _Answer:
    raw: dict[str, Any] | None
    error: GraphError | None


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What ``GET /{media_id}`` says about a media file.

    Fields:
        media_id: The media id.
        url: The download URL; valid about 5 minutes, fetched with the bearer token.
        mime_type: The MIME type, e.g. ``image/jpeg`` or ``audio/ogg; codecs=opus``.
        sha256: The SHA-256 of the file as hex (``""`` when Meta gave none).
        file_size: Bytes, or ``None`` when Meta gave no usable size.
    """

    media_id: str
    url: str
    mime_type: str
    sha256: str
    file_size: int | None


@dataclass(frozen=True, slots=True)
class MediaInfoResult:
    """Outcome of :meth:`GraphClient.media_info`: ``info`` or ``error``, and attempts made."""

    info: MediaInfo | None
    error: GraphError | None
    attempts: int


@dataclass(frozen=True, slots=True)
class DownloadResult(Generic[T]):
    """Outcome of :meth:`GraphClient.download`: what ``consume`` returned, or ``error``."""

    value: T | None
    error: GraphError | None
    attempts: int


@dataclass(frozen=True, slots=True)
class UploadResult:
    """Outcome of :meth:`GraphClient.upload`: the new ``media_id``, or ``error``."""

    media_id: str | None
    error: GraphError | None
    attempts: int


class GraphClient:
    """Sends WhatsApp messages and read receipts, and moves media, through the Graph API.

    Args:
        base_url: Graph API root; point it at the simulator in tests and local runs.
        api_version: Graph API version path segment.
        timeout: Seconds allowed for one HTTP attempt (``aiohttp.ClientTimeout(total=...)``).
        retry: Bounds of retries (attempts, backoff, total elapsed time).
        rng: Source of jitter; seed it for reproducible delays.
        sleep: Awaitable used to wait between attempts (inject a fake in tests).
        clock: Monotonic clock in seconds that measures ``retry.max_elapsed`` (inject a fake
            together with ``sleep``).

    Retries happen on: catalogue codes marked retryable with no ``retry_after``; answers
    without a known code whose HTTP status is 429 or 5xx; timeouts and connection errors.
    Codes the catalogue knows as not retryable are never retried, whatever the HTTP status.
    A timed-out send may have reached Meta, so its retry can deliver the message twice.
    The access token is never logged; recipients are logged masked.
    """

    def __init__(
        self,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v21.0",
        *,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = f"{base_url.rstrip('/')}/{api_version.strip('/')}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def send_message(
        self, phone_number_id: str, access_token: str, payload: dict[str, Any]
    ) -> SendResult:
        """POST ``payload`` (a complete Cloud API message) to ``/{phone_number_id}/messages``.

        Returns a :class:`SendResult` whose ``wamid`` is ``messages[0].id`` of Meta's answer.
        A 2xx answer without a message id is a failure that is not retried (the message may
        have been accepted). Never raises for HTTP, Graph or network errors.
        """
        label = f"message to {mask_phone(str(payload.get('to', '')))}"
        return await self._call(phone_number_id, access_token, payload, label, needs_wamid=True)

    async def mark_read(
        self,
        phone_number_id: str,
        access_token: str,
        message_id: str,
        *,
        typing_indicator: bool = False,
    ) -> SendResult:
        """Mark inbound ``message_id`` (and earlier ones) as read; optionally show typing.

        The typing indicator lasts until the business replies or 25 seconds pass. Returns a
        :class:`SendResult` with ``wamid=None``. Never raises for HTTP, Graph or network
        errors.
        """
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        }
        if typing_indicator:
            body["typing_indicator"] = {"type": "text"}
        label = f"read receipt for {message_id}"
        return await self._call(phone_number_id, access_token, body, label, needs_wamid=False)

    async def close(self) -> None:
        """Close the shared session and its connections; a later call opens a new one."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=_CONNECTION_LIMIT, keepalive_timeout=_KEEPALIVE_SECONDS
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def _call(
        self,
        phone_number_id: str,
        access_token: str,
        body: dict[str, Any],
        label: str,
        *,
        needs_wamid: bool,
    ) -> SendResult:
        url = f"{self._root}/{phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {access_token}"}
        answer, attempts = await self._with_retries(
            label, lambda: self._request("POST", url, headers, needs_wamid=needs_wamid, json=body)
        )
        wamid = _wamid(answer.raw) if answer.error is None else None
        return SendResult(wamid, answer.error, attempts, answer.raw)

    async def _with_retries(
        self, label: str, attempt_once: Callable[[], Awaitable[_Answer]]
    ) -> tuple[_Answer, int]:
        """Run ``attempt_once`` until it succeeds or the policy says stop; the last answer
        and the number of attempts made."""
        policy = self._retry
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            answer = await attempt_once()
            error = answer.error
            if error is None:
                return answer, attempt
            if not _should_retry(error) or attempt >= policy.max_attempts:
                break
            scope = error.info.scope if error.info.retryable else RetryScope.REQUEST
            wait = policy.delay(attempt, self._rng, scope)
            if self._clock() - started + wait > policy.max_elapsed:
                break
            logger.info(
                "WhatsApp %s failed (attempt %d/%d): %s; retrying in %.2f s",
                label,
                attempt,
                policy.max_attempts,
                _describe(error),
                wait,
            )
            await self._sleep(wait)
        logger.warning(
            "WhatsApp %s failed after %d attempt(s): %s", label, attempt, _describe(error)
        )
        return answer, attempt

    async def _request(
        self, method: str, url: str, headers: dict[str, str], *, needs_wamid: bool, **kwargs: Any
    ) -> _Answer:
        try:
            async with self._http().request(method, url, headers=headers, **kwargs) as response:
                status = response.status
                text = await response.text(errors="replace")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return _network_failure(exc)
        return _parse_answer(status, text, needs_wamid=needs_wamid)

    # ------------------------------------------------------- media (issue #10)
    async def media_info(self, media_id: str, access_token: str) -> MediaInfoResult:
        """``GET /{media_id}``: a short-lived download URL, MIME type, size and sha256 (hex).

        Returns a :class:`MediaInfoResult`; an answer without a URL is a failure. Never
        raises for HTTP, Graph or network errors.
        """
        url = f"{self._root}/{quote(media_id, safe='')}"
        headers = {"Authorization": f"Bearer {access_token}"}
        answer, attempts = await self._with_retries(
            f"media info for {media_id}",
            lambda: self._request("GET", url, headers, needs_wamid=False),
        )
        if answer.error is not None:
            return MediaInfoResult(None, answer.error, attempts)
        info = _media_info(answer.raw or {}, media_id)
        if info is None:
            error = GraphError(None, "Answer without a media URL", "", 200)
            return MediaInfoResult(None, error, attempts)
        return MediaInfoResult(info, None, attempts)

    async def download(
        self,
        url: str,
        access_token: str,
        consume: Callable[[AsyncIterator[bytes]], Awaitable[T]],
    ) -> DownloadResult[T]:
        """GET a media URL with the bearer token and hand its body, as chunks, to ``consume``.

        ``consume`` runs once per attempt that got a 200 and must be restartable: a
        connection lost mid-body is a network failure, retried with a fresh body. There is
        no total time limit (only per-read and connect timeouts); bound the whole call
        with ``asyncio.wait_for``. Non-200 answers are failures with their ``http_status``
        (401 or 404: the URL expired, ask :meth:`media_info` again). Exceptions that
        ``consume`` raises, other than network ones, propagate. Never raises for HTTP,
        Graph or network errors.
        """
        headers = {"Authorization": f"Bearer {access_token}"}
        consumed: list[T] = []

        async def attempt_once() -> _Answer:
            try:
                async with self._http().get(
                    url, headers=headers, timeout=self._stream_timeout()
                ) as response:
                    if response.status != 200:
                        text = await response.text(errors="replace")
                        return _parse_answer(response.status, text, needs_wamid=False)
                    consumed.append(await consume(response.content.iter_chunked(_CHUNK)))
                    return _Answer(None, None)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                return _network_failure(exc)

        answer, attempts = await self._with_retries("media download", attempt_once)
        value = consumed[-1] if answer.error is None else None
        return DownloadResult(value, answer.error, attempts)

    async def upload(
        self,
        phone_number_id: str,
        access_token: str,
        open_file: Callable[[], BinaryIO],
        mime_type: str,
        filename: str,
    ) -> UploadResult:
        """``POST /{phone_number_id}/media`` (multipart ``messaging_product``, ``type``,
        ``file``): the media id Meta keeps for 30 days.

        ``open_file`` is called once per attempt and returns the file positioned at its
        start (it is closed after the attempt). Never raises for HTTP, Graph or network
        errors.
        """
        url = f"{self._root}/{phone_number_id}/media"
        headers = {"Authorization": f"Bearer {access_token}"}

        async def attempt_once() -> _Answer:
            file = open_file()
            try:
                form = aiohttp.FormData()
                form.add_field("messaging_product", "whatsapp")
                form.add_field("type", mime_type)
                form.add_field("file", file, filename=filename, content_type=mime_type)
                return await self._request(
                    "POST", url, headers, needs_wamid=False, data=form,
                    timeout=self._stream_timeout(),
                )
            finally:
                file.close()

        answer, attempts = await self._with_retries(f"media upload ({mime_type})", attempt_once)
        media_id = (answer.raw or {}).get("id") if answer.error is None else None
        if answer.error is None and not (isinstance(media_id, str) and media_id):
            error = GraphError(None, "Answer without a media id", "", 200)
            return UploadResult(None, error, attempts)
        return UploadResult(media_id, answer.error, attempts)

    def _stream_timeout(self) -> aiohttp.ClientTimeout:
        """Per-read and connect limits only: a large file may take longer than one call."""
        limit = self._timeout.total
        return aiohttp.ClientTimeout(total=None, sock_connect=limit, sock_read=limit)


def _media_info(raw: dict[str, Any], media_id: str) -> MediaInfo | None:
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return None
    size = raw.get("file_size")
    return MediaInfo(
        media_id=str(raw.get("id") or media_id),
        url=url,
        mime_type=str(raw.get("mime_type") or ""),
        sha256=str(raw.get("sha256") or ""),
        file_size=_as_int(size),
    )


def _network_failure(exc: BaseException) -> _Answer:
    kind = "Timeout" if isinstance(exc, asyncio.TimeoutError) else "Network error"
    return _Answer(None, GraphError(None, kind, _exception_text(exc), None, network=True))


def _parse_answer(status: int, text: str, *, needs_wamid: bool) -> _Answer:
    try:
        raw = json.loads(text)
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        title = "Answer is not a JSON object" if status < 400 else f"HTTP {status}"
        return _Answer(None, GraphError(None, title, text[:_DETAILS_MAX], status))
    body_error = raw.get("error")
    if isinstance(body_error, dict):
        return _Answer(raw, _graph_error(status, body_error))
    if status >= 400:
        return _Answer(raw, GraphError(None, f"HTTP {status}", text[:_DETAILS_MAX], status))
    if needs_wamid and _wamid(raw) is None:
        return _Answer(raw, GraphError(None, "Answer without a message id", "", status))
    return _Answer(raw, None)


def _graph_error(status: int, error: dict[str, Any]) -> GraphError:
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    trace = error.get("fbtrace_id")
    return GraphError(
        code=_as_int(error.get("code")),
        title=str(error.get("message") or error.get("title") or f"HTTP {status}"),
        details=str(details or ""),
        http_status=status,
        subcode=_as_int(error.get("error_subcode")),
        fbtrace_id=str(trace) if trace else None,
    )


def _should_retry(error: GraphError) -> bool:
    if error.network:
        return True
    info = error.info
    if info.family is not ErrorFamily.UNKNOWN:
        return info.retryable and info.retry_after == 0
    status = error.http_status or 0
    return status == 429 or status >= 500


def _wamid(raw: dict[str, Any] | None) -> str | None:
    messages = (raw or {}).get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        wamid = messages[0].get("id")
        return wamid if isinstance(wamid, str) and wamid else None
    return None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _exception_text(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _describe(error: GraphError) -> str:
    if error.network:
        return f"network failure ({error.title}: {error.details})"
    info = error.info
    parts = [f"code={error.code}", f"'{info.title}'", f"message={error.title!r}"]
    if error.http_status is not None:
        parts.append(f"http={error.http_status}")
    if error.details:
        parts.append(f"details={error.details!r}")
    if error.fbtrace_id:
        parts.append(f"fbtrace_id={error.fbtrace_id}")
    parts.append(f"action={info.action.value}")
    return " ".join(parts)
