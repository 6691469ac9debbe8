"""Settings the custom actions read from the action server's environment."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def positive_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """The whole number >= 1 in variable ``name`` (``environ``, default ``os.environ``);
    ``default`` when it is missing or blank, and (with a warning) when it is not such a
    number."""
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        logger.warning("Ignoring %s=%r: expected a whole number >= 1; using %d", name, raw, default)
        return default
    return value
