"""Synchronous client for the simulator's control API (``/_sim/...``), for tests and demos.

Every method raises :class:`SimulatorError` when the simulator answers non-2xx.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests


class SimulatorError(RuntimeError):
    """The control API rejected a request (its ``error`` text is the message)."""


class SimulatorClient:
    """Drives a running simulator at ``base_url`` (e.g. ``http://127.0.0.1:8090``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SimulatorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Any:
        response = self._session.request(
            method,
            f"{self.base_url}{path}",
            json=body,
            params=params,
            data=data,
            timeout=self.timeout,
        )
        if not response.ok:
            try:
                reason = response.json().get("error", response.text)
            except ValueError:
                reason = response.text
            raise SimulatorError(f"{method} {path} -> {response.status_code}: {reason}")
        return response.json()

    # --- inbound messages --------------------------------------------------------------

    def inbound(self, from_: str, type: str = "text", **fields: Any) -> dict[str, Any]:
        """Play any inbound message (fields as ``POST /_sim/inbound``); returns
        ``{wamid, timestamp, webhook_status, deliveries, media_id?}``."""
        return self._call("POST", "/_sim/inbound", body={"from": from_, "type": type, **fields})

    def inbound_text(
        self, from_: str, text: str, *, name: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Play a text message from ``from_`` (optionally with ``referral``, ``reply_to``...)."""
        if name is not None:
            fields["name"] = name
        return self.inbound(from_, "text", text=text, **fields)

    def inbound_media(
        self, from_: str, media_type: str, *, caption: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Play an image/video/audio/document/sticker; the simulator stores real bytes."""
        if caption is not None:
            fields["caption"] = caption
        return self.inbound(from_, media_type, **fields)

    def inbound_reply(
        self, from_: str, reply_to: str, reply_id: str, title: str, **fields: Any
    ) -> dict[str, Any]:
        """Tap a reply button / list row of the business message ``reply_to``."""
        return self.inbound(
            from_, "interactive", reply_to=reply_to, id=reply_id, title=title, **fields
        )

    def inbound_raw(self, from_: str, message: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """Deliver ``message`` verbatim as ``messages[0]``."""
        return self.inbound(from_, raw=message, **fields)

    def post_webhook(
        self, envelope: dict[str, Any] | bytes, *, sign: bool = True, secret: str | None = None
    ) -> dict[str, Any]:
        """Forward a raw envelope to the bot once; returns ``{webhook_status, response}``."""
        body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        params = {"sign": "true" if sign else "false"}
        if secret is not None:
            params["secret"] = secret
        return self._call("POST", "/_sim/webhook", params=params, data=body)

    def verify(self, verify_token: str, challenge: str | None = None) -> dict[str, Any]:
        """Meta's GET verification handshake against the bot."""
        body: dict[str, Any] = {"verify_token": verify_token}
        if challenge is not None:
            body["challenge"] = challenge
        return self._call("POST", "/_sim/verify", body=body)

    # --- what the contact received --------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Messages the business sent (to one contact, or all), in send order."""
        params = {"to": to} if to is not None else None
        return list(self._call("GET", "/_sim/messages", params=params)["messages"])

    def wait_for_messages(
        self, to: str, count: int, timeout: float = 10.0, *, poll: float = 0.05
    ) -> list[dict[str, Any]]:
        """Poll until ``to`` has received at least ``count`` messages; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.messages(to)
            if len(received) >= count:
                return received
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{to} received {len(received)} message(s), expected {count}: {received}"
                )
            time.sleep(poll)

    def wait_for_status(
        self, wamid: str, status: str, timeout: float = 10.0, *, poll: float = 0.05
    ) -> dict[str, Any]:
        """Poll until message ``wamid`` has reached ``status``; returns the message record."""
        deadline = time.monotonic() + timeout
        while True:
            record = next((m for m in self.messages() if m["wamid"] == wamid), None)
            if record is not None and status in [s["status"] for s in record["statuses"]]:
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{wamid} did not reach {status!r}: {record}")
            time.sleep(poll)

    def read_receipts(self, contact: str | None = None) -> list[dict[str, Any]]:
        params = {"contact": contact} if contact is not None else None
        return list(self._call("GET", "/_sim/read_receipts", params=params)["read_receipts"])

    # --- clock, contacts, templates ---------------------------------------------------------

    def clock(self) -> float:
        return float(self._call("GET", "/_sim/clock")["now"])

    def advance_clock(self, seconds: float) -> float:
        return float(self._call("POST", "/_sim/clock", body={"advance_seconds": seconds})["now"])

    def set_clock(self, unix_time: float) -> float:
        return float(self._call("POST", "/_sim/clock", body={"set": unix_time})["now"])

    def contact(self, wa_id: str) -> dict[str, Any]:
        """Behaviour, name and window state of a contact."""
        return dict(self._call("GET", f"/_sim/contacts/{wa_id}"))

    def set_behaviour(self, wa_id: str, behaviour: str) -> dict[str, Any]:
        """``online`` | ``offline`` | ``no_read_receipts`` | ``blocked`` | ``undeliverable`` |
        ``marketing_limit``."""
        return dict(self._call("POST", f"/_sim/contacts/{wa_id}", body={"behaviour": behaviour}))

    def upsert_template(self, template: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/_sim/templates", body=template))

    # --- faults, stats, lifecycle ----------------------------------------------------------

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """E.g. ``set_faults(throttle={"count": 2, "code": 130429}, latency_ms=50)``."""
        return dict(self._call("POST", "/_sim/faults", body=faults))

    def clear_faults(self) -> dict[str, Any]:
        return dict(self._call("DELETE", "/_sim/faults"))

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_sim/stats"))

    def wait_idle(self, timeout: float = 10.0, *, poll: float = 0.05) -> None:
        """Poll until no status webhook or retry is pending; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while self._call("GET", "/_sim/pending")["pending"]:
            if time.monotonic() >= deadline:
                raise TimeoutError("simulator still has pending webhook work")
            time.sleep(poll)

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")
