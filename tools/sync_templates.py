"""Refresh the template catalogue from Meta: statuses, categories and texts of every template.

    WHATSAPP_ACCESS_TOKEN=... python -m tools.sync_templates --waba-id 1234567890 \\
        [--api-base-url https://graph.facebook.com] [--api-version v21.0] \\
        [--catalogue templates/catalogue.yml]

Reads every page of ``GET /{version}/{waba_id}/message_templates`` (following
``paging.next``), replaces what Meta owns in the catalogue file and keeps the local
parameter mappings of templates that still exist (see :mod:`whatsapp_core.templates`), then
prints what changed; a catalogue file that does not exist yet is created. The token comes
from ``WHATSAPP_ACCESS_TOKEN`` and is never printed (Meta's ``paging.next`` links may carry
it, so they are never printed either). Exit code 1 with a plain message on any error; the
file is only written after every page was read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import requests

from whatsapp_core.config import DEFAULT_API_BASE_URL, DEFAULT_API_VERSION
from whatsapp_core.errors import lookup
from whatsapp_core.templates import CatalogueError, SyncSummary, TemplateCatalogue

FIELDS = "name,category,status,language,components,parameter_format"
PAGE_LIMIT = 100
MAX_PAGES = 1000
TIMEOUT_SECONDS = 30


class SyncFailed(Exception):
    """A plain message for the operator (never containing the token)."""


def _graph_error(response: requests.Response) -> str:
    """The Graph error body as a message: code, Meta's text, details, what the code means."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"Graph API answered HTTP {response.status_code}"
    code = error.get("code")
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    lines = [f"Graph API error {code} (HTTP {response.status_code}): {error.get('message', '')}"]
    if details:
        lines.append(f"details: {details}")
    lines.append(f"meaning: {lookup(code if isinstance(code, int) else None).explanation}")
    return "\n".join(lines)


def fetch_templates(
    session: requests.Session, base_url: str, version: str, waba_id: str, token: str
) -> list[dict[str, Any]]:
    """Every ``data[]`` item of every page; SyncFailed on an HTTP, network or shape error."""
    url: str | None = f"{base_url.rstrip('/')}/{version}/{waba_id}/message_templates"
    params: dict[str, Any] | None = {"fields": FIELDS, "limit": PAGE_LIMIT}
    headers = {"Authorization": f"Bearer {token}"}
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    while url is not None:
        if url in seen or len(seen) >= MAX_PAGES:
            raise SyncFailed("Graph API paging does not end (a page links back to itself)")
        seen.add(url)
        try:
            response = session.get(url, params=params, headers=headers, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise SyncFailed(
                f"could not reach the Graph API: {type(error).__name__}: "
                f"{str(error).replace(token, '***')}"
            ) from None
        if response.status_code != 200:
            raise SyncFailed(_graph_error(response))
        try:
            page = response.json()
        except ValueError:
            raise SyncFailed("the Graph API answered with something that is not JSON") from None
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise SyncFailed("the Graph API answer has no 'data' list")
        items.extend(data)
        paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
        url = paging.get("next") or None
        params = None  # the next link carries every parameter
    return items


def _summary(summary: SyncSummary, count: int, translations: int, path: str) -> str:
    lines = [f"{count} templates ({translations} translations) from Meta; wrote {path}"]
    if summary.added:
        lines.append(f"new: {', '.join(summary.added)}")
    if summary.removed:
        lines.append(f"no longer at Meta (removed): {', '.join(summary.removed)}")
    for name, language, old, new in summary.status_changes:
        lines.append(f"{name} ({language}): {old or 'new'} -> {new}")
    if summary.unmapped:
        lines.append(
            "need parameter mappings in the catalogue before they can be sent: "
            + ", ".join(summary.unmapped)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waba-id", required=True, help="the WhatsApp Business Account id")
    parser.add_argument(
        "--api-base-url", default=os.environ.get("WHATSAPP_API_BASE_URL", DEFAULT_API_BASE_URL)
    )
    parser.add_argument(
        "--api-version", default=os.environ.get("WHATSAPP_API_VERSION", DEFAULT_API_VERSION)
    )
    parser.add_argument("--catalogue", default="templates/catalogue.yml")
    args = parser.parse_args(argv)
    token = os.environ.get("WHATSAPP_ACCESS_TOKEN", "").strip()
    if not token:
        print(
            "set WHATSAPP_ACCESS_TOKEN (a token with whatsapp_business_management)",
            file=sys.stderr,
        )
        return 1
    path = Path(args.catalogue)
    try:
        catalogue = TemplateCatalogue.load(path) if path.exists() else TemplateCatalogue()
        with requests.Session() as session:
            items = fetch_templates(
                session, args.api_base_url, args.api_version, args.waba_id, token
            )
        summary = catalogue.replace_from_graph(items)
        catalogue.dump(path)
    except (SyncFailed, CatalogueError, OSError) as error:
        print(f"template sync failed: {error}", file=sys.stderr)
        return 1
    print(_summary(summary, len(catalogue.templates), len(items), args.catalogue))
    return 0


if __name__ == "__main__":
    sys.exit(main())
