"""How long to wait before retrying a send: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from whatsapp_core.errors import RetryScope

_MAX_EXPONENT = 32


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds and pacing of retries for one request.

    Fields:
        max_attempts: Attempts in total, the first included (``1`` disables retries).
        base_delay: Seconds; the backoff ceiling of the first retry of a request.
        max_delay: Seconds; no single wait is longer.
        max_elapsed: Seconds; no retry starts a wait that would end later than this after
            the first attempt began.
        pair_rate_base: Seconds; the base of Meta's ``4^X`` advice for the pair rate limit
            (131056, scope ``CONTACT``).

    Raises:
        ValueError: if ``max_attempts`` < 1 or any duration is negative.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_elapsed: float = 30.0
    pair_rate_base: float = 4.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "max_elapsed", "pair_rate_base"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def delay(
        self,
        attempt: int,
        rng: random.Random,
        scope: RetryScope = RetryScope.REQUEST,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first attempt).

        ``REQUEST`` scope: full jitter, a uniform draw in ``[0, min(max_delay,
        base_delay * 2^(attempt-1))]``. ``CONTACT`` scope (pair rate limit): the ceiling is
        ``min(max_delay, pair_rate_base^attempt)`` (4 s, 16 s, ... per Meta) and the draw is
        in its upper half, because the pair limit refills at about one message per 6 s, so
        a near-zero wait would fail again. Deterministic for a seeded ``rng``.

        Raises:
            ValueError: if ``attempt`` < 1.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        exponent = min(attempt, _MAX_EXPONENT)  # growth beyond this is capped anyway
        if scope is RetryScope.CONTACT:
            ceiling = min(self.max_delay, self.pair_rate_base**exponent)
            return rng.uniform(ceiling / 2, ceiling)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (exponent - 1))
        return rng.uniform(0.0, ceiling)
