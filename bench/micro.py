"""Core costs per webhook payload: signature check, parse, normalization (microseconds).

For every sample of the shared corpus (``../shared/corpus/webhooks``, or
``WHATSAPP_CORPUS_DIR``), in this process, with ``timeit``: each figure is the median of
``repeats`` timings of a loop sized to take about 20 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import timeit
from dataclasses import dataclass
from pathlib import Path

from whatsapp_core.normalize import UnattributableMessage, normalize
from whatsapp_core.signature import sign, verify_signature
from whatsapp_core.webhook import InvalidWebhook, WebhookEnvelope

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(
    os.environ.get("WHATSAPP_CORPUS_DIR", REPO_ROOT.parent / "shared" / "corpus" / "webhooks")
)
SECRET = "micro-bench-secret"


@dataclass
class PayloadCost:
    name: str
    size: int
    messages: int
    statuses: int
    json_us: float
    signature_us: float
    parse_us: float
    normalize_us: float | None  # all messages of the payload; None when it has none

    @property
    def total_us(self) -> float:
        return self.signature_us + self.parse_us + (self.normalize_us or 0.0)


def _time_us(fn, repeats: int) -> float:
    number = 1
    while True:
        elapsed = timeit.timeit(fn, number=number)
        if elapsed >= 0.01 or number >= 1_000_000:
            break
        number *= 4
    runs = [timeit.timeit(fn, number=number) / number for _ in range(repeats)]
    return statistics.median(runs) * 1e6


def measure(path: Path, repeats: int = 3) -> PayloadCost:
    body = path.read_bytes()
    header = sign(body, SECRET)
    assert verify_signature(body, header, SECRET)
    try:
        envelope = WebhookEnvelope.parse(body)
    except InvalidWebhook:
        envelope = None
    messages = envelope.messages if envelope else []
    received_at = 1_750_000_000

    def normalize_all() -> None:
        for change, message in messages:
            try:
                normalize(message, change.contact_for(message), change.business,
                          received_at=received_at)
            except UnattributableMessage:
                pass

    return PayloadCost(
        name=path.stem,
        size=len(body),
        messages=len(messages),
        statuses=len(envelope.statuses) if envelope else 0,
        json_us=_time_us(lambda: json.loads(body), repeats),
        signature_us=_time_us(lambda: verify_signature(body, header, SECRET), repeats),
        parse_us=_time_us(lambda: WebhookEnvelope.parse(body), repeats),
        normalize_us=_time_us(normalize_all, repeats) if messages else None,
    )


def run(repeats: int = 3) -> list[PayloadCost]:
    files = sorted(CORPUS_DIR.glob("*.json"))
    if not files:
        raise RuntimeError(f"no corpus in {CORPUS_DIR} (set WHATSAPP_CORPUS_DIR)")
    return [measure(path, repeats) for path in files]


if __name__ == "__main__":
    for cost in run():
        normalize_text = "       -" if cost.normalize_us is None else f"{cost.normalize_us:8.1f}"
        print(
            f"{cost.name:50s} {cost.size:6d} B  json {cost.json_us:6.1f}  sig "
            f"{cost.signature_us:6.1f}  parse {cost.parse_us:6.1f}  norm {normalize_text}"
        )
