"""The simulator's controllable clock (real time plus an offset)."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Simulated unix time: starts at real time and moves with it, plus a settable offset.

    Windows, status timestamps, webhook timestamps and media URL expiry all read this clock.
    """

    def __init__(self, time_source: Callable[[], float] = time.time) -> None:
        self._time_source = time_source
        self._offset = 0.0

    def now(self) -> float:
        """Current simulated unix time in seconds."""
        return self._time_source() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (must be >= 0); returns the new time."""
        if seconds < 0:
            raise ValueError("advance_seconds must be >= 0")
        self._offset += seconds
        return self.now()

    def set(self, unix_time: float) -> float:
        """Jump to ``unix_time`` (may go backwards); returns the new time."""
        self._offset = unix_time - self._time_source()
        return self.now()

    def reset(self) -> None:
        """Return to real time."""
        self._offset = 0.0
