"""The template balance: top-ups, reservations before a send, charges and releases after.

The help-centre article (``shared/seed``) puts it plainly: sending templates needs enough
balance. Under Meta's per-message pricing (fact sheet sections 3 and 4) a template is
charged per delivered message by category (marketing, utility, authentication,
authentication-international) and the contact's country; utility templates inside an open
customer service window and everything inside a free entry point window are free.

The flow, one SQL transaction per step (functions take a SQLAlchemy ``Connection``; the
store runs them on its thread with ``await store.run(lambda c: ledger.reserve(c, ...))``):

1. :func:`reserve` before sending: holds the expected price (see
   :meth:`RateCard.expected_price`) under the outbox id, or refuses with
   :class:`InsufficientBalance`. A zero price is still recorded as a zero reservation, so
   every template send is in the ledger and a later charge can be matched to it.
2. :func:`attach_wamid` when Meta accepted the send (do it in the transaction that records
   the send result: statuses are matched by wamid).
3. :func:`settle` on the first status webhook with ``pricing``: billable → the hold becomes a
   charge; free (``free_customer_service``, ``free_entry_point``) → the hold is released.
   :func:`release` when the send failed.

Guarantees: :func:`reserve` never takes ``available`` below zero, also with several
processes on one SQLite or PostgreSQL database (a conditional ``UPDATE ... WHERE available
>= price`` on the single account row; SQLite serialises writers, PostgreSQL re-checks the
condition after the row lock). Reserving a key twice returns the first reservation;
settling or releasing twice changes nothing. Only a settle with an explicit ``price`` above
the hold (Meta billed what we expected to be free) can take ``available`` below zero: that
money is already spent, and the balance shows it.

Money is integer micro-units of the account currency (1 USD = 1,000,000): no floats.

The tables are added to :data:`whatsapp_core.schema.metadata`: import this module before
the store creates its tables, or call :func:`create_tables`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection, Engine

from whatsapp_core.prepared import Prepared
from whatsapp_core.schema import insert_ignoring_duplicate, metadata
from whatsapp_core.window import WindowKind, WindowState

MICRO = 1_000_000
DEFAULT_CURRENCY = "USD"
ACCOUNT_ID = 1
DEFAULT_COUNTRY = "default"

ledger_account = sa.Table(
    "whatsapp_ledger_account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("available", sa.BigInteger, nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

ledger_reservations = sa.Table(
    "whatsapp_ledger_reservations",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("wamid", sa.String(255), unique=True),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("template", sa.String(512), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("country", sa.String(32), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("pricing_type", sa.String(64)),
    sa.Column("billed_category", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("settled_at", sa.Float),
)

ledger_entries = sa.Table(
    "whatsapp_ledger_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("outbox_id", sa.String(255)),
    sa.Column("wamid", sa.String(255)),
    sa.Column("template", sa.String(512)),
    sa.Column("category", sa.String(64)),
    sa.Column("country", sa.String(32)),
    sa.Column("conversation_id", sa.String(255)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("note", sa.Text),
    sa.Index("ix_whatsapp_ledger_entries_created", "created_at"),
)

TABLES = (ledger_account, ledger_reservations, ledger_entries)


def create_tables(bind: Engine | Connection) -> None:
    """Create the ledger tables that do not exist yet."""
    metadata.create_all(bind, tables=list(TABLES))


class EntryKind(str, Enum):
    """A ledger line: money added, held for a send, charged by Meta, or given back."""

    TOP_UP = "top_up"
    RESERVATION = "reservation"
    CHARGE = "charge"
    RELEASE = "release"


class ReservationState(str, Enum):
    RESERVED = "reserved"
    CHARGED = "charged"
    RELEASED = "released"


class CurrencyMismatch(ValueError):
    """An amount in another currency than the account's."""


# ------------------------------------------------------------------------- money
def parse_amount(text: str | int | float | Decimal) -> int:
    """Micro-units from a decimal amount (``"10.50"`` → 10_500_000); ValueError if it is
    not a number or has more than six decimals."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not an amount")
    micro = value * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{text!r} has more than six decimals")
    return int(micro)


def format_amount(micro: int) -> str:
    """A micro-unit amount with at least two decimals: 1_500_000 → ``"1.50"``,
    1_234_500 → ``"1.2345"``, -30_000 → ``"-0.03"``."""
    sign = "-" if micro < 0 else ""
    units, fraction = divmod(abs(micro), MICRO)
    decimals = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{units}.{decimals}"


# ------------------------------------------------------------------------ records
@dataclass(frozen=True, slots=True)
class Balance:
    """``available``: money free for new sends; ``reserved``: held for sends not yet
    settled (micro-units of ``currency``)."""

    available: int
    reserved: int
    currency: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one template send, keyed by its outbox id."""

    key: str
    conversation_id: str
    template: str
    category: str
    country: str
    amount: int
    currency: str
    state: ReservationState
    wamid: str | None


@dataclass(frozen=True, slots=True)
class InsufficientBalance:
    """:func:`reserve` refused: ``price`` is more than ``available`` (micro-units)."""

    key: str
    price: int
    available: int
    currency: str


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One line of the ledger (amounts are never negative; ``kind`` says the direction)."""

    id: int
    kind: EntryKind
    amount: int
    currency: str
    outbox_id: str | None
    wamid: str | None
    template: str | None
    category: str | None
    country: str | None
    conversation_id: str | None
    created_at: float
    note: str | None


def _account(connection: Connection) -> Any:
    return connection.execute(
        sa.select(ledger_account).where(ledger_account.c.id == ACCOUNT_ID)
    ).first()


def _check_currency(account: Any, currency: str | None) -> None:
    if account is not None and currency is not None and currency.upper() != account.currency:
        raise CurrencyMismatch(f"the account is in {account.currency}, not {currency.upper()}")


def _entry(connection: Connection, kind: EntryKind, amount: int, currency: str, **fields) -> None:
    connection.execute(
        ledger_entries.insert().values(
            kind=kind.value, amount=amount, currency=currency, created_at=time.time(), **fields
        )
    )


def _reservation(row: Any) -> Reservation:
    return Reservation(
        key=row.key,
        conversation_id=row.conversation_id,
        template=row.template,
        category=row.category,
        country=row.country,
        amount=row.amount,
        currency=row.currency,
        state=ReservationState(row.state),
        wamid=row.wamid,
    )


# ---------------------------------------------------------------------- operations
def balance(connection: Connection) -> Balance:
    """The account's balance (zero in :data:`DEFAULT_CURRENCY` before the first top-up)."""
    account = _account(connection)
    if account is None:
        return Balance(0, 0, DEFAULT_CURRENCY)
    return Balance(account.available, account.reserved, account.currency)


def top_up(
    connection: Connection, amount: int, note: str = "", *, currency: str | None = None
) -> Balance:
    """Add ``amount`` micro-units (> 0). The first top-up fixes the account currency
    (``currency`` or :data:`DEFAULT_CURRENCY`); later ones must match (CurrencyMismatch)."""
    if amount <= 0:
        raise ValueError("a top-up must be positive")
    now = time.time()
    insert_ignoring_duplicate(
        connection,
        ledger_account,
        {
            "id": ACCOUNT_ID,
            "currency": (currency or DEFAULT_CURRENCY).upper(),
            "available": 0,
            "reserved": 0,
            "updated_at": now,
        },
    )
    account = _account(connection)
    _check_currency(account, currency)
    connection.execute(
        ledger_account.update()
        .where(ledger_account.c.id == ACCOUNT_ID)
        .values(available=ledger_account.c.available + amount, updated_at=now)
    )
    _entry(connection, EntryKind.TOP_UP, amount, account.currency, note=note or None)
    return balance(connection)


def reserve(
    connection: Connection,
    *,
    key: str,
    conversation_id: str,
    template: str,
    category: str,
    country: str,
    price: int,
    currency: str | None = None,
) -> Reservation | InsufficientBalance:
    """Hold ``price`` micro-units for the send with outbox id ``key``.

    Returns the :class:`Reservation`, or :class:`InsufficientBalance` (nothing recorded)
    when ``available`` is below ``price``. A key already reserved returns that reservation
    unchanged. ``currency`` (the rate card's), when given, must be the account's.
    """
    if price < 0:
        raise ValueError("a price cannot be negative")
    account_currency = (currency or DEFAULT_CURRENCY).upper()
    values = {
        "key": key,
        "conversation_id": conversation_id,
        "template": template,
        "category": category,
        "country": country,
        "amount": price,
        "currency": account_currency,
        "state": ReservationState.RESERVED.value,
        "created_at": time.time(),
    }
    inserted = insert_ignoring_duplicate(connection, ledger_reservations, values)
    if not inserted:
        return _reservation(
            connection.execute(
                sa.select(ledger_reservations).where(ledger_reservations.c.key == key)
            ).one()
        )
    account = _account(connection)
    _check_currency(account, currency)
    if account is not None and account.currency != account_currency:
        account_currency = account.currency
        connection.execute(
            ledger_reservations.update()
            .where(ledger_reservations.c.key == key)
            .values(currency=account_currency)
        )
    held = price == 0 or connection.execute(
        ledger_account.update()
        .where(ledger_account.c.id == ACCOUNT_ID)
        .where(ledger_account.c.available >= price)
        .values(
            available=ledger_account.c.available - price,
            reserved=ledger_account.c.reserved + price,
            updated_at=time.time(),
        )
    ).rowcount == 1
    if not held:
        connection.execute(ledger_reservations.delete().where(ledger_reservations.c.key == key))
        available = account.available if account is not None else 0
        return InsufficientBalance(key, price, available, account_currency)
    _entry(
        connection,
        EntryKind.RESERVATION,
        price,
        account_currency,
        outbox_id=key,
        template=template,
        category=category,
        country=country,
        conversation_id=conversation_id,
    )
    return Reservation(
        key, conversation_id, template, category, country, price, account_currency,
        ReservationState.RESERVED, None,
    )


def attach_wamid(connection: Connection, key: str, wamid: str) -> bool:
    """Record Meta's message id for the reservation ``key``; False when there is none."""
    return connection.execute(
        ledger_reservations.update()
        .where(ledger_reservations.c.key == key)
        .values(wamid=wamid)
    ).rowcount == 1


# Closing a reservation by wamid (settled from pricing) or by key (released), built once;
# ``pricing_type``, ``billed_category`` and ``settled_at`` are bound at execution.
_CLOSE_BY = {
    column: ledger_reservations.update()
    .where(ledger_reservations.c[column] == sa.bindparam("match"))
    .where(ledger_reservations.c.state == ReservationState.RESERVED.value)
    .values(state=sa.bindparam("new_state"))
    for column in ("wamid", "key")
}

def _close(
    connection: Connection,
    column: str,
    match: str,
    state: ReservationState,
    pricing_type: str | None = None,
    billed_category: str | None = None,
) -> Any:
    """Move the reserved reservation whose ``column`` (``wamid`` or ``key``) is ``match``
    to ``state`` (a write first); its row, or None when unknown or already settled."""
    changed = connection.execute(
        _CLOSE_BY[column],
        {
            "match": match,
            "new_state": state.value,
            "pricing_type": pricing_type,
            "billed_category": billed_category,
            "settled_at": time.time(),
        },
    ).rowcount
    if changed != 1:
        return None
    return connection.execute(
        sa.select(ledger_reservations).where(ledger_reservations.c[column] == match)
    ).one()


def _give_back(connection: Connection, row: Any, note: str) -> None:
    connection.execute(
        ledger_account.update()
        .where(ledger_account.c.id == ACCOUNT_ID)
        .values(
            available=ledger_account.c.available + row.amount,
            reserved=ledger_account.c.reserved - row.amount,
            updated_at=time.time(),
        )
    )
    _entry(
        connection,
        EntryKind.RELEASE,
        row.amount,
        row.currency,
        outbox_id=row.key,
        wamid=row.wamid,
        template=row.template,
        category=row.category,
        country=row.country,
        conversation_id=row.conversation_id,
        note=note,
    )


def settle(
    connection: Connection,
    wamid: str,
    *,
    billable: bool,
    pricing_type: str | None,
    category: str | None,
    price: int | None = None,
) -> bool:
    """Settle the reservation of message ``wamid`` from a status webhook's ``pricing``.

    ``billable`` (``pricing.type`` ``regular``): the hold becomes a charge of ``price``
    (default: the amount held); otherwise the hold is released. Returns True when this
    call settled it; False for an unknown wamid or one already settled or released.
    """
    state = ReservationState.CHARGED if billable else ReservationState.RELEASED
    row = _close(connection, "wamid", wamid, state, pricing_type, category)
    if row is None:
        return False
    if not billable:
        _give_back(connection, row, f"not billable ({pricing_type or 'free'})")
        return True
    charged = row.amount if price is None else price
    connection.execute(
        ledger_account.update()
        .where(ledger_account.c.id == ACCOUNT_ID)
        .values(
            available=ledger_account.c.available - (charged - row.amount),
            reserved=ledger_account.c.reserved - row.amount,
            updated_at=time.time(),
        )
    )
    _entry(
        connection,
        EntryKind.CHARGE,
        charged,
        row.currency,
        outbox_id=row.key,
        wamid=wamid,
        template=row.template,
        category=category or row.category,
        country=row.country,
        conversation_id=row.conversation_id,
        note=f"{pricing_type or 'regular'}; held {format_amount(row.amount)}",
    )
    return True


_RESERVED_WAMIDS = Prepared(
    sa.select(ledger_reservations.c.wamid).where(
        ledger_reservations.c.wamid.in_(sa.bindparam("wamids", expanding=True)),
        ledger_reservations.c.state == ReservationState.RESERVED.value,
    )
)


def reserved_wamids(connection: Connection, wamids: Sequence[str]) -> set[str]:
    """Which of ``wamids`` still have a reservation held (to settle from their status)."""
    return {row.wamid for row in _RESERVED_WAMIDS.rows(connection, {"wamids": list(wamids)})}


def settle_from_pricing(connection: Connection, wamid: str, pricing: Mapping[str, Any]) -> bool:
    """:func:`settle` with the terms of a status webhook's ``pricing`` object (``billable``
    defaults to ``type == "regular"`` when Meta leaves it out; values of the wrong JSON
    type count as absent)."""
    billable = pricing.get("billable")
    pricing_type = _text_or_none(pricing.get("type"))
    if not isinstance(billable, bool):
        billable = pricing_type == "regular"
    return settle(
        connection,
        wamid,
        billable=billable,
        pricing_type=pricing_type,
        category=_text_or_none(pricing.get("category")),
    )


def _text_or_none(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) else None


def release(connection: Connection, key: str, reason: str) -> bool:
    """Give back the hold of send ``key`` (the send failed); False when there is nothing
    reserved under that key (unknown, already settled or released)."""
    row = _close(connection, "key", key, ReservationState.RELEASED)
    if row is None:
        return False
    _give_back(connection, row, reason)
    return True


def recent_entries(connection: Connection, limit: int = 20) -> list[LedgerEntry]:
    """The newest ``limit`` ledger lines, newest first."""
    rows = connection.execute(
        sa.select(ledger_entries).order_by(ledger_entries.c.id.desc()).limit(limit)
    ).fetchall()
    return [
        LedgerEntry(
            id=row.id,
            kind=EntryKind(row.kind),
            amount=row.amount,
            currency=row.currency,
            outbox_id=row.outbox_id,
            wamid=row.wamid,
            template=row.template,
            category=row.category,
            country=row.country,
            conversation_id=row.conversation_id,
            created_at=row.created_at,
            note=row.note,
        )
        for row in rows
    ]


# ----------------------------------------------------------------------- rate card
def _category(category: str) -> str:
    return category.strip().lower().replace("-", "_")


@dataclass(frozen=True, slots=True)
class RateCard:
    """Price per delivered message by category and contact country.

    ``prefixes``: dialling prefix → country key (longest prefix wins); ``rates``: country
    key → category → micro-units, with a ``default`` country used for unlisted countries
    and for categories a country does not list.
    """

    currency: str
    prefixes: Mapping[str, str]
    rates: Mapping[str, Mapping[str, int]]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateCard:
        """Build from the rate card file's structure; ValueError naming a bad field."""
        rates_data = data.get("rates")
        if not isinstance(rates_data, Mapping) or DEFAULT_COUNTRY not in rates_data:
            raise ValueError(f"the rate card needs 'rates' with a '{DEFAULT_COUNTRY}' entry")
        rates: dict[str, dict[str, int]] = {}
        for country, prices in rates_data.items():
            if not isinstance(prices, Mapping):
                raise ValueError(f"rates.{country}: expected category: price pairs")
            try:
                rates[str(country)] = {
                    _category(str(c)): parse_amount(p) for c, p in prices.items()
                }
            except ValueError as error:
                raise ValueError(f"rates.{country}: {error}") from None
        prefixes = {str(p): str(c) for p, c in (data.get("prefixes") or {}).items()}
        unknown = sorted(set(prefixes.values()) - set(rates))
        if unknown:
            raise ValueError(f"prefixes name countries without rates: {', '.join(unknown)}")
        return cls(str(data.get("currency") or DEFAULT_CURRENCY).upper(), prefixes, rates)

    @classmethod
    def load(cls, path: str | Path) -> RateCard:
        try:
            return cls.from_dict(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
        except (ValueError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: {error}") from None

    def country_of(self, wa_id: str) -> str:
        """The country key of a contact from the dialling prefix of its ``wa_id``;
        ``default`` when no prefix matches (or for a business-scoped user id)."""
        digits = str(wa_id).strip().lstrip("+")
        if not digits.isdigit():
            return DEFAULT_COUNTRY
        for length in range(min(len(digits), 4), 0, -1):
            country = self.prefixes.get(digits[:length])
            if country is not None:
                return country
        return DEFAULT_COUNTRY

    def price(self, category: str, wa_id: str) -> int:
        """List price (micro-units) of one message of ``category`` (``marketing``,
        ``UTILITY``, ``authentication-international``...) to ``wa_id``; ValueError for a
        category the card does not price."""
        key = _category(category)
        country_rates = self.rates.get(self.country_of(wa_id), {})
        if key in country_rates:
            return country_rates[key]
        if key in self.rates[DEFAULT_COUNTRY]:
            return self.rates[DEFAULT_COUNTRY][key]
        raise ValueError(f"the rate card has no price for category {category!r}")

    def expected_price(self, category: str, wa_id: str, window: WindowState) -> int:
        """What Meta is expected to charge for one message now: 0 inside a free entry point
        window (everything is free there), 0 for a utility template while the service window
        is open, else the list price (``service`` for free-form messages; 0 on the shipped
        card, see its note on 2026 changes)."""
        if window.kind is WindowKind.FREE_ENTRY_POINT:
            return 0
        if _category(category) == "utility" and window.open:
            return 0
        return self.price(category, wa_id)
