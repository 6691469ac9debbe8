"""Signed webhook delivery to the bot, the way Meta delivers them.

Bodies are serialized like Meta's (ASCII-only JSON with ``\\/``-escaped slashes), signed with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>`` and POSTed with one
shared :class:`aiohttp.ClientSession`. A delivery that gets anything but HTTP 200 (or no
answer) is retried with exponential backoff, up to the configured number of attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from simulator.config import PhoneNumber, SimulatorConfig
from simulator.stats import Stats

log = logging.getLogger(__name__)


def sign(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def serialize(payload: dict[str, Any]) -> bytes:
    """Meta-style JSON bytes: non-ASCII as ``\\uXXXX`` and ``/`` as ``\\/``.

    A receiver that re-serializes the parsed JSON instead of hashing the raw bytes computes a
    different HMAC, exactly as with Meta.
    """
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def messages_envelope(waba_id: str, phone: PhoneNumber, value: dict[str, Any]) -> dict[str, Any]:
    """A ``field: messages`` webhook for one business number; ``value`` adds contacts,
    messages or statuses to the standard ``messaging_product`` and ``metadata`` keys."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": phone.display_phone_number,
                                "phone_number_id": phone.id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def field_envelope(
    waba_id: str, field_name: str, value: dict[str, Any], now: float
) -> dict[str, Any]:
    """A WABA-level webhook (e.g. ``message_template_status_update``), with ``entry[].time``."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": waba_id, "time": int(now), "changes": [{"value": value, "field": field_name}]}
        ],
    }


@dataclass(frozen=True)
class Attempt:
    """One POST to the bot: its HTTP status (None if no answer) and response text or error."""

    status: int | None
    text: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.text[:2000], "error": self.error}


class WebhookDispatcher:
    """Delivers webhooks to ``config.webhook_url``; owns the session and background tasks.

    Call :meth:`start` inside the running loop before use and :meth:`close` at shutdown.
    """

    def __init__(self, config: SimulatorConfig, stats: Stats) -> None:
        self._config = config
        self._stats = stats
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self._config.webhook_url)

    @property
    def pending(self) -> int:
        """Background tasks (status emissions, retries) not finished yet."""
        return sum(1 for task in self._tasks if not task.done())

    def reconfigure(self, config: SimulatorConfig) -> None:
        """Use ``config`` (a new webhook URL) for every later attempt; the session and its
        timeouts stay as they were built at :meth:`start`."""
        self._config = config

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(
            total=self._config.webhook_timeout_seconds,
            connect=min(5.0, self._config.webhook_timeout_seconds),
        )
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=100)
        )

    async def close(self) -> None:
        await self.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, tracked so reset/shutdown can cancel it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background webhook task failed", exc_info=task.exception())

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def post(
        self,
        body: bytes,
        *,
        signature: str | None,
        url: str | None = None,
    ) -> Attempt:
        """One POST of raw ``body`` (with ``signature`` as ``X-Hub-Signature-256`` if given)."""
        target = url or self._config.webhook_url
        if not target:
            return Attempt(None, error="webhook delivery is disabled (no webhook URL)")
        assert self._session is not None, "dispatcher not started"
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        self._stats.webhooks["attempts"] += 1
        try:
            async with self._session.post(target, data=body, headers=headers) as response:
                attempt = Attempt(response.status, await response.text(errors="replace"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            attempt = Attempt(None, error=f"{type(exc).__name__}: {exc}")
        self._stats.webhooks["delivered" if attempt.ok else "failed_attempts"] += 1
        return attempt

    async def get(self, url: str) -> Attempt:
        """One GET (used for the verification handshake)."""
        assert self._session is not None, "dispatcher not started"
        try:
            async with self._session.get(url) as response:
                return Attempt(response.status, await response.text(errors="replace"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return Attempt(None, error=f"{type(exc).__name__}: {exc}")

    async def deliver(self, payload: dict[str, Any]) -> Attempt:
        """Sign and POST ``payload``, retrying until HTTP 200 or attempts run out.

        Returns the last attempt. Does nothing (and says so) when delivery is disabled.
        """
        body = serialize(payload)
        return await self._retry(body, await self._post_signed(body), first_attempt=1)

    async def deliver_acknowledged(self, payload: dict[str, Any], *, copies: int) -> list[Attempt]:
        """POST ``copies`` identical deliveries, awaiting the first attempt of each; failed
        ones are retried in the background. Returns the first attempt of each copy."""
        body = serialize(payload)
        attempts = []
        for copy in range(copies):
            if copy:
                self._stats.webhooks["duplicates"] += 1
            attempt = await self._post_signed(body)
            attempts.append(attempt)
            if not attempt.ok and self.enabled:
                self.spawn(self._retry(body, attempt, first_attempt=1))
        return attempts

    async def _post_signed(self, body: bytes) -> Attempt:
        return await self.post(body, signature=sign(body, self._config.app_secret))

    async def _retry(self, body: bytes, attempt: Attempt, *, first_attempt: int) -> Attempt:
        """Retry after ``attempt`` (attempt number ``first_attempt``) with backoff."""
        number = first_attempt
        while not attempt.ok and self.enabled and number < self._config.webhook_max_attempts:
            delay = min(
                self._config.webhook_retry_base_seconds * 2 ** (number - 1),
                self._config.webhook_retry_max_seconds,
            )
            await asyncio.sleep(delay)
            number += 1
            attempt = await self._post_signed(body)
        if not attempt.ok and self.enabled:
            self._stats.webhooks["gave_up"] += 1
            log.warning("webhook not accepted after %d attempt(s): %s", number, attempt)
        return attempt
