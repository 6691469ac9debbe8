"""Masking of personal identifiers before they reach a log line."""

from __future__ import annotations

_VISIBLE = 4


def mask_phone(value: str) -> str:
    """Hide a phone number (or BSUID) except its last four characters.

    ``"+16505551234"`` → ``"***1234"``. A value of four characters or fewer is masked
    entirely (``"***"``), since showing it whole would not mask anything. Never raises:
    a non-string is masked through ``str()``.
    """
    text = str(value).strip()
    if len(text) <= _VISIBLE:
        return "***"
    return "***" + text[-_VISIBLE:]
