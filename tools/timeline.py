"""Print one contact's WhatsApp timeline: messages both ways, their states, and why any failed.

    python -m tools.timeline 16505551234 [--db-url sqlite:///whatsapp.db] [--json]

The database is the channel's (``WHATSAPP_STORE_URL`` or
``sqlite:///whatsapp.db`` by default). Phone numbers are printed as given: this is an
operator's tool, run where the data already is.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

import sqlalchemy as sa

from whatsapp_core.schema import inbox
from whatsapp_core.store import create_engine
from whatsapp_core.store_location import store_url_from_env
from whatsapp_core.timeline import TimelineEntry, load_timeline


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render(entries: list[TimelineEntry]) -> str:
    """The timeline as lines of text, one block per message."""
    lines = []
    for entry in entries:
        arrow = "<-" if entry.direction == "in" else "->"
        lines.append(f"{_when(entry.at)} {arrow} [{entry.kind}] {entry.summary}  ({entry.state})")
        for state, at in entry.states:
            lines.append(f"      {state:<10} {_when(at)}")
        if entry.unsupported:
            lines.append(
                f"      unsupported: {entry.unsupported['kind']} -> "
                f"{entry.unsupported['recommended_action']}"
            )
        if entry.failure:
            code = entry.failure.get("error_code")
            label = "HELD" if entry.failure.get("held") else (
                f"FAILED {code}" if code else "NOT DELIVERED"
            )
            lines.append(f"      {label}: {entry.failure['explanation']}")
            lines.append(f"      what to do: {', '.join(entry.failure['recommended_actions'])}")
    return "\n".join(lines) if lines else "no messages for this contact"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contact", help="the conversation id (the contact's wa_id)")
    parser.add_argument(
        "--db-url", default=store_url_from_env()
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    engine = create_engine(args.db_url)
    if not sa.inspect(engine).has_table(inbox.name):
        print(f"no WhatsApp channel tables in {args.db_url}: "
              "is it the channel's database (WHATSAPP_STORE_URL)?")
        return 1
    with engine.begin() as connection:
        entries = load_timeline(connection, args.contact)
    if args.json:
        print(json.dumps([entry.to_dict() for entry in entries], indent=2, ensure_ascii=False))
    else:
        print(render(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
