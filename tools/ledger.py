"""Show and top up the template balance; list the latest ledger lines.

    python -m tools.ledger balance [--db-url sqlite:///whatsapp.db]
    python -m tools.ledger top-up 25.00 [--note "invoice 42"] [--currency USD]
    python -m tools.ledger recent [--limit 20]

The database is the channel's (``WHATSAPP_STORE_URL`` or
``sqlite:///whatsapp.db`` by default); the ledger tables are created when missing. Amounts are
decimal numbers in the account currency; they are stored as integer micro-units and printed
with at least two decimals.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from whatsapp_core import ledger
from whatsapp_core.store import create_engine
from whatsapp_core.store_location import store_url_from_env


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render_balance(balance: ledger.Balance) -> str:
    return (
        f"available {ledger.format_amount(balance.available)} {balance.currency}\n"
        f"reserved  {ledger.format_amount(balance.reserved)} {balance.currency}"
    )


def render_entries(entries: list[ledger.LedgerEntry]) -> str:
    """One line per ledger entry, newest first."""
    if not entries:
        return "no ledger entries"
    lines = []
    for entry in entries:
        sign = "+" if entry.kind in (ledger.EntryKind.TOP_UP, ledger.EntryKind.RELEASE) else "-"
        what = " ".join(
            part
            for part in (entry.template, entry.category, entry.country, entry.wamid, entry.note)
            if part
        )
        lines.append(
            f"{_when(entry.created_at)} {entry.kind.value:<11} "
            f"{sign}{ledger.format_amount(entry.amount)} {entry.currency}  {what}".rstrip()
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db-url",
        default=argparse.SUPPRESS,
        help="database URL (default: $WHATSAPP_STORE_URL or sqlite:///whatsapp.db)",
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("balance", parents=[common], help="print the balance")
    top_up = commands.add_parser("top-up", parents=[common], help="add money")
    top_up.add_argument("amount", help="a decimal amount, e.g. 25.00")
    top_up.add_argument("--note", default="")
    top_up.add_argument("--currency", default=None, help="the first top-up sets the currency")
    recent = commands.add_parser("recent", parents=[common], help="latest ledger lines")
    recent.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)
    db_url = getattr(args, "db_url", None) or store_url_from_env()

    engine = create_engine(db_url)
    try:
        ledger.create_tables(engine)
        with engine.begin() as connection:
            if args.command == "balance":
                output = render_balance(ledger.balance(connection))
            elif args.command == "top-up":
                amount = ledger.parse_amount(args.amount)
                balance = ledger.top_up(connection, amount, args.note, currency=args.currency)
                output = f"added {ledger.format_amount(amount)}\n{render_balance(balance)}"
            else:
                output = render_entries(ledger.recent_entries(connection, args.limit))
    except ValueError as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
