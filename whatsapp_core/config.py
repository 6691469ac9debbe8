"""The channel's settings, read from the ``credentials.yml`` entry of the channel.

Rasa substitutes ``${VAR}`` in unquoted credentials.yml values from the environment,
so secrets never sit in the file. YAML reads digits-only values (phone number ids)
as ints and ``true`` as bools: every value is converted here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from whatsapp_core.numbers import BusinessNumbers, InvalidNumbers

DEFAULT_API_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
REQUIRED_KEYS = ("verify_token", "app_secret", "access_token", "phone_number_id")
DEFAULT_MEDIA_MAX_BYTES = 100 * 1024 * 1024


class MissingCredential(ValueError):
    """A required credentials.yml key is missing or empty; the message names it."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _number(value: Any, default: float) -> float:
    if value is None or str(value).strip() == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MissingCredential(f"'{value}' is not a number") from None


def _port(value: Any) -> int | None:
    number = _number(value, 0)
    if number != int(number) or not 0 <= number <= 65535:
        raise MissingCredential(f"WhatsApp channel: '{value}' is not a TCP port")
    return int(number) or None


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Validated settings of one ``whatsapp`` channel entry.

    ``phone_number_id`` is the primary number; ``numbers`` all served numbers (see
    :mod:`whatsapp_core.numbers`). ``store_url`` None means: the database
    :func:`~whatsapp_core.store_location.channel_store_url` derives from Rasa's tracker
    store (``whatsapp.db`` beside a SQLite one).
    ``closed_window_template``: the approved template that replaces a free-form reply when
    the contact's window is closed (an empty value holds such replies instead).
    ``follow_up_after_seconds``: how long a contact may stay silent after the bot asked
    something before the ``whatsapp_follow_up`` intent fires (0 disables follow-ups).
    ``media_dir``: where inbound files are kept (unless ``media_store`` names another
    store class, ``package.module:ClassName``); ``media_max_bytes``: the largest inbound
    file kept; ``media_upload_dir``: the only directory replies send local files from.
    ``status_spool_dir``: where status webhooks are spooled before their answer (see
    :mod:`whatsapp_core.status_spool`); empty applies them before answering instead.
    ``ingress_port``: when set, a separate ingress process serves the webhook on
    ``ingress_host:ingress_port`` (see :mod:`whatsapp_core.ingress`); Rasa's port keeps
    serving it too.
    """

    verify_token: str
    app_secret: str
    access_token: str
    phone_number_id: str
    numbers: BusinessNumbers
    api_base_url: str = DEFAULT_API_BASE_URL
    api_version: str = DEFAULT_API_VERSION
    mark_as_read: bool = True
    typing_indicator: bool = True
    max_concurrent_turns: int = 2
    recovery_lease_seconds: float = 30.0
    dedup_retention_days: float = 7.0
    store_url: str | None = None
    send_timeout_seconds: float = 10.0
    stuck_after_seconds: float = 3600.0
    agent_token: str | None = None
    closed_window_template: str | None = "follow_up"
    follow_up_after_seconds: float = 4 * 3600.0
    template_catalogue: str = "templates/catalogue.yml"
    rate_card: str = "templates/rate_card.yml"
    album_window_seconds: float = 2.0
    # media (issue #10): see docs/media.md
    media_dir: str = "var/media"
    media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES
    media_upload_dir: str = "var/outbox-media"
    media_store: str | None = None
    status_spool_dir: str | None = "var/spool"
    ingress_port: int | None = None
    ingress_host: str = "0.0.0.0"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> ChannelConfig:
        """Build the config; raise :class:`MissingCredential` naming a missing key."""
        credentials = credentials or {}
        for key in REQUIRED_KEYS:
            if not _text(credentials.get(key)):
                raise MissingCredential(
                    f"WhatsApp channel: credentials.yml key '{key}' is missing or empty "
                    f"(set it, e.g. '{key}: ${{WHATSAPP_{key.upper()}}}' and export the variable)"
                )
        access_token = str(credentials["access_token"]).strip()
        try:
            numbers = BusinessNumbers.parse(credentials["phone_number_id"], access_token)
        except InvalidNumbers as error:
            raise MissingCredential(f"WhatsApp channel: {error}") from None
        return cls(
            verify_token=str(credentials["verify_token"]).strip(),
            app_secret=str(credentials["app_secret"]).strip(),
            access_token=access_token,
            phone_number_id=numbers.primary,
            numbers=numbers,
            api_base_url=(_text(credentials.get("api_base_url")) or DEFAULT_API_BASE_URL).rstrip(
                "/"
            ),
            api_version=_text(credentials.get("api_version")) or DEFAULT_API_VERSION,
            mark_as_read=_flag(credentials.get("mark_as_read"), True),
            typing_indicator=_flag(credentials.get("typing_indicator"), True),
            max_concurrent_turns=max(1, int(_number(credentials.get("max_concurrent_turns"), 2))),
            recovery_lease_seconds=_number(credentials.get("recovery_lease_seconds"), 30.0),
            dedup_retention_days=_number(credentials.get("dedup_retention_days"), 7.0),
            store_url=_text(credentials.get("store_url")),
            send_timeout_seconds=_number(credentials.get("send_timeout_seconds"), 10.0),
            stuck_after_seconds=_number(credentials.get("stuck_after_seconds"), 3600.0),
            agent_token=_text(credentials.get("agent_token")),
            closed_window_template=(
                _text(credentials.get("closed_window_template"))
                if "closed_window_template" in credentials
                else "follow_up"
            ),
            follow_up_after_seconds=_number(
                credentials.get("follow_up_after_seconds"), 4 * 3600.0
            ),
            template_catalogue=_text(credentials.get("template_catalogue"))
            or "templates/catalogue.yml",
            rate_card=_text(credentials.get("rate_card")) or "templates/rate_card.yml",
            album_window_seconds=_number(credentials.get("album_window_seconds"), 2.0),
            media_dir=_text(credentials.get("media_dir")) or "var/media",
            media_max_bytes=int(
                _number(credentials.get("media_max_bytes"), DEFAULT_MEDIA_MAX_BYTES)
            ),
            media_upload_dir=_text(credentials.get("media_upload_dir")) or "var/outbox-media",
            media_store=_text(credentials.get("media_store")),
            status_spool_dir=(
                _text(credentials.get("status_spool_dir"))
                if "status_spool_dir" in credentials
                else "var/spool"
            ),
            ingress_port=_port(credentials.get("ingress_port")),
            ingress_host=_text(credentials.get("ingress_host")) or "0.0.0.0",
        )
