"""Counters of everything the simulator received and did (``GET /_sim/stats``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """``requests`` by route name; ``rejected`` Graph answers by error code (faults excluded);
    ``faults_served`` by fault kind; ``webhooks`` delivery counters (``attempts``,
    ``delivered``, ``failed_attempts``, ``gave_up``, ``duplicates``)."""

    requests: Counter[str] = field(default_factory=Counter)
    sends_accepted: int = 0
    marks_read: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    faults_served: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    inbound_played: int = 0

    def clear(self) -> None:
        vars(self).update(vars(Stats()))

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "sends_accepted": self.sends_accepted,
            "marks_read": self.marks_read,
            "rejected": {str(code): n for code, n in self.rejected.items()},
            "rejected_total": sum(self.rejected.values()),
            "faults_served": dict(self.faults_served),
            "webhooks": dict(self.webhooks),
            "inbound_played": self.inbound_played,
        }
