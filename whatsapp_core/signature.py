"""``X-Hub-Signature-256`` signing and verification (HMAC-SHA256 of the raw body).

Meta signs every webhook POST with the app secret; the signature must be computed
over the exact bytes received, never over re-serialised JSON, and compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX_DIGEST = re.compile("[0-9a-fA-F]{64}")


def sign(body: bytes, app_secret: str) -> str:
    """Return the header value Meta would send for ``body``: ``sha256=<hex digest>``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify_signature(body: bytes, header_value: str | None, app_secret: str) -> bool:
    """Tell whether ``header_value`` is a valid signature of ``body``.

    Accepts exactly ``sha256=`` followed by 64 hex digits (either case); anything
    else (missing, other algorithm, truncated, base64, stray spaces) is invalid.
    The digest comparison is constant-time. Never raises.
    """
    if not header_value or not app_secret or not header_value.startswith(_PREFIX):
        return False
    received = header_value[len(_PREFIX):]
    if not _HEX_DIGEST.fullmatch(received):
        return False
    received_bytes = bytes.fromhex(received)
    expected = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, received_bytes)
