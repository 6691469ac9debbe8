"""Fault injection for the Graph API side: latency, throttling, 5xx, dropped connections,
duplicated and reordered webhooks. Every fault is bounded (a count, or on until reset)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.errors import ErrorCode

MAX_COUNT = 100_000
MAX_LATENCY_MS = 60_000
THROTTLE_CODES = (
    ErrorCode.THROUGHPUT_RATE_LIMIT,
    ErrorCode.PAIR_RATE_LIMIT,
    ErrorCode.WABA_RATE_LIMIT,
)
SERVER_ERROR_CODES = {500: ErrorCode.SOMETHING_WENT_WRONG, 503: ErrorCode.SERVICE_UNAVAILABLE}


@dataclass
class Throttle:
    """The next ``remaining`` sends answer ``http_status`` with throttling error ``code``."""

    remaining: int
    code: ErrorCode
    http_status: int = 400


@dataclass
class ServerErrors:
    """The next ``remaining`` Graph requests answer HTTP ``status`` (500 or 503)."""

    remaining: int
    status: int


def _count(spec: dict[str, Any], name: str) -> int:
    value = spec.get("count")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{name}.count must be an integer between 0 and {MAX_COUNT}")
    return value


@dataclass
class FaultPlan:
    """The active faults. ``apply`` adds to it; ``clear`` removes everything.

    Scope: ``latency_ms``, ``server_errors`` and ``drop_connections`` apply to every Graph API
    request (sends, media, templates, downloads); ``throttle`` applies to
    ``POST /{phone-number-id}/messages`` only; ``duplicate_webhooks`` and
    ``reorder_statuses`` apply to webhooks the simulator delivers (not to ``/_sim/webhook``).
    """

    latency_ms: int = 0
    throttle: Throttle | None = None
    server_errors: ServerErrors | None = None
    drop_connections: int = 0
    duplicate_webhooks: bool = False
    reorder_statuses: bool = False

    def apply(self, spec: dict[str, Any]) -> None:
        """Update from a ``POST /_sim/faults`` body; raises ValueError (nothing changed) if bad."""
        known = {"latency_ms", "throttle", "server_errors", "drop_connections", "webhooks"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        updated = FaultPlan(**vars(self))
        if "latency_ms" in spec:
            latency = spec["latency_ms"]
            if isinstance(latency, bool) or not isinstance(latency, int):
                raise ValueError("latency_ms must be an integer")
            if not 0 <= latency <= MAX_LATENCY_MS:
                raise ValueError(f"latency_ms must be between 0 and {MAX_LATENCY_MS}")
            updated.latency_ms = latency
        if "throttle" in spec:
            updated.throttle = self._throttle(spec["throttle"])
        if "server_errors" in spec:
            updated.server_errors = self._server_errors(spec["server_errors"])
        if "drop_connections" in spec:
            drop = spec["drop_connections"]
            if not isinstance(drop, dict):
                raise ValueError("drop_connections must be an object with count")
            updated.drop_connections = _count(drop, "drop_connections")
        if "webhooks" in spec:
            webhooks = spec["webhooks"]
            if not isinstance(webhooks, dict) or set(webhooks) - {"duplicate", "reorder"}:
                raise ValueError("webhooks must be an object with duplicate and/or reorder")
            for key in ("duplicate", "reorder"):
                if key in webhooks and not isinstance(webhooks[key], bool):
                    raise ValueError(f"webhooks.{key} must be a boolean")
            updated.duplicate_webhooks = webhooks.get("duplicate", self.duplicate_webhooks)
            updated.reorder_statuses = webhooks.get("reorder", self.reorder_statuses)
        vars(self).update(vars(updated))

    @staticmethod
    def _throttle(spec: Any) -> Throttle:
        if not isinstance(spec, dict):
            raise ValueError("throttle must be an object with count and code")
        count = _count(spec, "throttle")
        code = spec.get("code", int(ErrorCode.THROUGHPUT_RATE_LIMIT))
        if code not in [int(c) for c in THROTTLE_CODES]:
            raise ValueError(f"throttle.code must be one of {[int(c) for c in THROTTLE_CODES]}")
        http_status = spec.get("http_status", 400)
        if http_status not in (400, 429):
            raise ValueError("throttle.http_status must be 400 or 429")
        return Throttle(count, ErrorCode(code), http_status)

    @staticmethod
    def _server_errors(spec: Any) -> ServerErrors:
        if not isinstance(spec, dict):
            raise ValueError("server_errors must be an object with count and status")
        status = spec.get("status", 500)
        if status not in SERVER_ERROR_CODES:
            raise ValueError("server_errors.status must be 500 or 503")
        return ServerErrors(_count(spec, "server_errors"), status)

    def clear(self) -> None:
        vars(self).update(vars(FaultPlan()))

    def take_drop(self) -> bool:
        """Consume one dropped connection if any are left."""
        if self.drop_connections > 0:
            self.drop_connections -= 1
            return True
        return False

    def take_server_error(self) -> int | None:
        """Consume one server error; returns its HTTP status, or None."""
        if self.server_errors and self.server_errors.remaining > 0:
            self.server_errors.remaining -= 1
            return self.server_errors.status
        return None

    def take_throttle(self) -> Throttle | None:
        """Consume one throttled send; returns the throttle, or None."""
        if self.throttle and self.throttle.remaining > 0:
            self.throttle.remaining -= 1
            return self.throttle
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "throttle": (
                {
                    "remaining": self.throttle.remaining,
                    "code": int(self.throttle.code),
                    "http_status": self.throttle.http_status,
                }
                if self.throttle
                else None
            ),
            "server_errors": (
                {"remaining": self.server_errors.remaining, "status": self.server_errors.status}
                if self.server_errors
                else None
            ),
            "drop_connections": {"remaining": self.drop_connections},
            "webhooks": {"duplicate": self.duplicate_webhooks, "reorder": self.reorder_statuses},
        }
