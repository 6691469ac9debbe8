"""``python -m simulator``: serve the Cloud API simulator.

Every option can also come from an environment variable (shown in ``--help``); several
business numbers are given by repeating ``--phone-number-id`` and ``--display-phone-number``
(paired in order) or by comma-separating them in ``SIM_PHONE_NUMBER_ID`` /
``SIM_DISPLAY_PHONE_NUMBER``. An empty ``--webhook-url`` disables webhook delivery.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from aiohttp import web

from simulator.app import create_app
from simulator.config import (
    DEFAULT_DISPLAY_PHONE_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_WABA_ID,
    DEFAULT_WEBHOOK_URL,
    PhoneNumber,
    SimulatorConfig,
)


def _env_list(env: Mapping[str, str], name: str) -> list[str] | None:
    value = env.get(name)
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The command-line parser, with defaults taken from ``SIM_*`` variables in ``env``."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local stand-in for Meta's WhatsApp Cloud API (Graph API).",
    )

    def option(flag: str, env_name: str, default: str | None, help_text: str, **kw: object) -> None:
        parser.add_argument(
            flag, default=env.get(env_name, default), help=f"{help_text} [env {env_name}]", **kw
        )

    option("--host", "SIM_HOST", "127.0.0.1", "interface to listen on")
    option("--port", "SIM_PORT", "8090", "port to listen on", type=int)
    option(
        "--webhook-url",
        "SIM_WEBHOOK_URL",
        DEFAULT_WEBHOOK_URL,
        "the bot's webhook URL ('' disables delivery)",
    )
    option("--app-secret", "SIM_APP_SECRET", "SECRET", "app secret used to sign webhooks")
    option("--access-token", "SIM_ACCESS_TOKEN", "TOKEN", "bearer token the Graph API accepts")
    option("--waba-id", "SIM_WABA_ID", DEFAULT_WABA_ID, "WhatsApp Business Account id")
    option("--templates", "SIM_TEMPLATES", None, "YAML/JSON template list (default: built-in)")
    option(
        "--webhook-max-attempts",
        "SIM_WEBHOOK_MAX_ATTEMPTS",
        "5",
        "deliveries per webhook before giving up",
        type=int,
    )
    option(
        "--webhook-retry-base",
        "SIM_WEBHOOK_RETRY_BASE",
        "1.0",
        "seconds before the first retry (doubles each time)",
        type=float,
    )
    option(
        "--webhook-timeout",
        "SIM_WEBHOOK_TIMEOUT",
        "10.0",
        "seconds to wait for the bot's answer",
        type=float,
    )
    option(
        "--status-delay",
        "SIM_STATUS_DELAY",
        "0.05",
        "real seconds before each status webhook of a message",
        type=float,
    )
    option("--log-level", "SIM_LOG_LEVEL", "INFO", "logging level")
    parser.add_argument(
        "--phone-number-id",
        action="append",
        default=None,
        help="business phone number id; repeatable [env SIM_PHONE_NUMBER_ID, comma-separated]",
    )
    parser.add_argument(
        "--display-phone-number",
        action="append",
        default=None,
        help="display number for each --phone-number-id, in order "
        "[env SIM_DISPLAY_PHONE_NUMBER, comma-separated]",
    )
    return parser


def parse_config(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[argparse.Namespace, SimulatorConfig]:
    """Parse arguments (and ``SIM_*`` variables) into server options and a config."""
    env = os.environ if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    ids = args.phone_number_id or _env_list(env, "SIM_PHONE_NUMBER_ID") or [DEFAULT_PHONE_NUMBER_ID]
    displays = (
        args.display_phone_number
        or _env_list(env, "SIM_DISPLAY_PHONE_NUMBER")
        or [DEFAULT_DISPLAY_PHONE_NUMBER]
    )
    if len(displays) != len(ids):
        parser.error("give one --display-phone-number per --phone-number-id")
    config = SimulatorConfig(
        webhook_url=args.webhook_url or None,
        app_secret=args.app_secret,
        access_token=args.access_token,
        phone_numbers=tuple(PhoneNumber(i, d) for i, d in zip(ids, displays, strict=True)),
        waba_id=args.waba_id,
        templates_path=Path(args.templates) if args.templates else None,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_retry_base_seconds=args.webhook_retry_base,
        webhook_timeout_seconds=args.webhook_timeout,
        status_delay_seconds=args.status_delay,
    )
    return args, config


def main(argv: Sequence[str] | None = None) -> None:
    args, config = parse_config(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    numbers = ", ".join(f"{p.id} ({p.display_phone_number})" for p in config.phone_numbers)
    logging.getLogger("simulator").info(
        "WhatsApp Cloud API simulator on http://%s:%s, numbers %s, webhooks to %s",
        args.host,
        args.port,
        numbers,
        config.webhook_url or "(disabled)",
    )
    try:
        app = create_app(config)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        sys.exit(f"simulator: cannot start: {exc}")
    access_log = logging.getLogger("aiohttp.access")
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        access_log=access_log if access_log.isEnabledFor(logging.DEBUG) else None,
    )


if __name__ == "__main__":
    main()
