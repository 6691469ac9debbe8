"""The template balance (whatsapp_core.ledger) and the ``python -m tools.ledger`` command."""

import threading

import pytest

from tests.conftest import REPO_ROOT
from tools.ledger import main as ledger_main
from whatsapp_core import ledger
from whatsapp_core.ledger import (
    Balance,
    CurrencyMismatch,
    EntryKind,
    InsufficientBalance,
    RateCard,
    Reservation,
    ReservationState,
)
from whatsapp_core.store import WhatsAppStore, create_engine
from whatsapp_core.window import ConversationFacts, window_state

RATE_CARD_FILE = REPO_ROOT / "templates" / "rate_card.yml"
CENT = 10_000  # micro-units


@pytest.fixture
def engine(tmp_path):
    created = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.create_tables(created)
    yield created
    created.dispose()


def run(engine, fn):
    with engine.begin() as connection:
        return fn(connection)


def reserve(engine, key: str, price: int, **kwargs):
    return run(
        engine,
        lambda c: ledger.reserve(
            c,
            key=key,
            conversation_id="393331112222",
            template="follow_up",
            category="utility",
            country="IT",
            price=price,
            **kwargs,
        ),
    )


def sent(engine, key: str, price: int) -> str:
    """Reserve ``price`` for outbox ``key`` and attach its wamid."""
    assert isinstance(reserve(engine, key, price), Reservation)
    wamid = f"wamid.{key}"
    assert run(engine, lambda c: ledger.attach_wamid(c, key, wamid))
    return wamid


def balance(engine) -> Balance:
    return run(engine, ledger.balance)


# ------------------------------------------------------------------------ money
@pytest.mark.parametrize(
    ("text", "micro"), [("10", 10_000_000), ("0.03", 30_000), ("1.234567", 1_234_567), ("-2.5", -2_500_000)]
)
def test_amounts_are_integer_micro_units(text, micro):
    assert ledger.parse_amount(text) == micro


@pytest.mark.parametrize("text", ["abc", "1.2345678", "inf", ""])
def test_unusable_amounts_are_refused(text):
    with pytest.raises(ValueError):
        ledger.parse_amount(text)


@pytest.mark.parametrize(
    ("micro", "text"), [(1_500_000, "1.50"), (1_234_500, "1.2345"), (0, "0.00"), (-30_000, "-0.03"), (7, "0.000007")]
)
def test_amounts_print_with_at_least_two_decimals(micro, text):
    assert ledger.format_amount(micro) == text


# ------------------------------------------------------------- balance flow
def test_empty_ledger_has_a_zero_balance(engine):
    assert balance(engine) == Balance(0, 0, "USD")


def test_top_up_adds_to_the_available_balance(engine):
    run(engine, lambda c: ledger.top_up(c, 5 * ledger.MICRO, "invoice 1", currency="eur"))
    after = run(engine, lambda c: ledger.top_up(c, 250 * CENT, "invoice 2"))
    assert after == Balance(7_500_000, 0, "EUR")
    with pytest.raises(ValueError):
        run(engine, lambda c: ledger.top_up(c, 0))


def test_top_up_in_another_currency_is_refused(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO, currency="USD"))
    with pytest.raises(CurrencyMismatch):
        run(engine, lambda c: ledger.top_up(c, ledger.MICRO, currency="EUR"))
    with pytest.raises(CurrencyMismatch):
        reserve(engine, "1", CENT, currency="EUR")
    assert balance(engine) == Balance(ledger.MICRO, 0, "USD")


def test_reservation_moves_money_from_available_to_reserved(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO))
    reservation = reserve(engine, "17", 3 * CENT)
    assert reservation == Reservation(
        "17", "393331112222", "follow_up", "utility", "IT", 3 * CENT, "USD", ReservationState.RESERVED, None
    )
    assert balance(engine) == Balance(ledger.MICRO - 3 * CENT, 3 * CENT, "USD")


def test_reserving_the_same_outbox_id_twice_holds_once(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO))
    first = reserve(engine, "17", 3 * CENT)
    assert reserve(engine, "17", 3 * CENT) == first
    assert balance(engine).reserved == 3 * CENT


def test_reservation_above_the_available_balance_is_refused_and_not_recorded(engine):
    run(engine, lambda c: ledger.top_up(c, 5 * CENT))
    refusal = reserve(engine, "1", 6 * CENT)
    assert refusal == InsufficientBalance("1", 6 * CENT, 5 * CENT, "USD")
    assert balance(engine) == Balance(5 * CENT, 0, "USD")
    assert [e.kind for e in run(engine, lambda c: ledger.recent_entries(c, 10))] == [EntryKind.TOP_UP]
    assert isinstance(reserve(engine, "1", 5 * CENT), Reservation)
    assert balance(engine) == Balance(0, 5 * CENT, "USD")


def test_zero_price_is_recorded_without_any_balance(engine):
    assert reserve(engine, "free", 0).amount == 0
    assert balance(engine) == Balance(0, 0, "USD")
    assert run(engine, lambda c: ledger.recent_entries(c, 1))[0].kind is EntryKind.RESERVATION


def test_billable_status_turns_the_hold_into_a_charge_once(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO))
    wamid = sent(engine, "1", 7 * CENT)
    settle = lambda c: ledger.settle(c, wamid, billable=True, pricing_type="regular", category="marketing")  # noqa: E731
    assert run(engine, settle)
    assert not run(engine, settle)
    assert balance(engine) == Balance(ledger.MICRO - 7 * CENT, 0, "USD")
    charge = run(engine, lambda c: ledger.recent_entries(c, 1))[0]
    assert (charge.kind, charge.amount, charge.wamid, charge.category) == (
        EntryKind.CHARGE, 7 * CENT, wamid, "marketing"
    )


def test_free_status_releases_the_hold(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO))
    wamid = sent(engine, "1", 3 * CENT)
    assert run(
        engine,
        lambda c: ledger.settle(c, wamid, billable=False, pricing_type="free_entry_point", category="referral_conversion"),
    )
    assert not run(
        engine, lambda c: ledger.settle(c, wamid, billable=True, pricing_type="regular", category="utility")
    )
    assert balance(engine) == Balance(ledger.MICRO, 0, "USD")
    release = run(engine, lambda c: ledger.recent_entries(c, 1))[0]
    assert (release.kind, release.amount, release.note) == (EntryKind.RELEASE, 3 * CENT, "not billable (free_entry_point)")


def test_charge_of_a_send_expected_free_uses_metas_price(engine):
    run(engine, lambda c: ledger.top_up(c, 2 * CENT))
    wamid = sent(engine, "1", 0)
    assert run(
        engine,
        lambda c: ledger.settle(c, wamid, billable=True, pricing_type="regular", category="utility", price=3 * CENT),
    )
    assert balance(engine) == Balance(-CENT, 0, "USD")


def test_settling_an_unknown_wamid_changes_nothing(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO))
    reserve(engine, "1", CENT)
    assert not run(engine, lambda c: ledger.settle(c, "wamid.other", billable=True, pricing_type="regular", category="utility"))
    assert balance(engine) == Balance(ledger.MICRO - CENT, CENT, "USD")


def test_failed_send_releases_once(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO))
    reserve(engine, "1", 4 * CENT)
    assert run(engine, lambda c: ledger.release(c, "1", "send failed: 131026"))
    assert not run(engine, lambda c: ledger.release(c, "1", "again"))
    assert not run(engine, lambda c: ledger.release(c, "unknown", "x"))
    assert not run(engine, lambda c: ledger.attach_wamid(c, "unknown", "wamid.x"))
    assert balance(engine) == Balance(ledger.MICRO, 0, "USD")


def test_recent_entries_newest_first_with_a_limit(engine):
    run(engine, lambda c: ledger.top_up(c, ledger.MICRO, "first"))
    reserve(engine, "1", CENT)
    run(engine, lambda c: ledger.release(c, "1", "failed"))
    entries = run(engine, lambda c: ledger.recent_entries(c, 2))
    assert [(e.kind, e.outbox_id) for e in entries] == [(EntryKind.RELEASE, "1"), (EntryKind.RESERVATION, "1")]


def test_two_threads_reserving_at_once_never_overdraw(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    engines = [create_engine(url), create_engine(url)]
    ledger.create_tables(engines[0])
    run(engines[0], lambda c: ledger.top_up(c, 100 * CENT))
    results: list = []
    start = threading.Barrier(2)

    def worker(index: int) -> None:
        start.wait()
        for n in range(40):
            results.append(reserve(engines[index], f"{index}-{n}", 3 * CENT))
            assert balance(engines[index]).available >= 0

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = [r for r in results if isinstance(r, Reservation)]
    assert len(results) == 80
    assert len(granted) == 33
    assert balance(engines[0]) == Balance(CENT, 99 * CENT, "USD")
    for engine in engines:
        engine.dispose()


async def test_runs_on_the_store_thread(tmp_path):
    store = WhatsAppStore(f"sqlite:///{tmp_path / 'store.db'}", instance_id="t")
    try:
        await store.run(lambda c: ledger.top_up(c, ledger.MICRO))
        result = await store.run(
            lambda c: ledger.reserve(
                c, key="9", conversation_id="1", template="t", category="utility", country="US_CA", price=CENT
            )
        )
        assert isinstance(result, Reservation)
        assert await store.run(ledger.balance) == Balance(ledger.MICRO - CENT, CENT, "USD")
    finally:
        store.close()


# -------------------------------------------------------------------- rate card
@pytest.fixture(scope="module")
def card() -> RateCard:
    return RateCard.load(RATE_CARD_FILE)


@pytest.mark.parametrize(
    ("wa_id", "country"),
    [("393331112222", "IT"), ("+16505551234", "US_CA"), ("447700900123", "GB"), ("4915112345678", "DE"),
     ("919812345678", "IN"), ("5511987654321", "BR"), ("61412345678", "default"), ("US.13491208655302741918", "default")],
)
def test_country_from_the_dialling_prefix(card, wa_id, country):
    assert card.country_of(wa_id) == country


def test_longest_dialling_prefix_wins():
    card = RateCard.from_dict(
        {
            "prefixes": {"1": "US_CA", "1876": "JM"},
            "rates": {"default": {"marketing": "0.05"}, "US_CA": {}, "JM": {"marketing": "0.04"}},
        }
    )
    assert card.country_of("18765551234") == "JM"
    assert card.price("marketing", "18765551234") == 40_000
    assert card.price("marketing", "16505551234") == 50_000


def test_prices_by_category_and_country(card):
    assert card.currency == "USD"
    assert card.price("marketing", "393331112222") == 69_100
    assert card.price("UTILITY", "16505551234") == 4_000
    assert card.price("authentication-international", "919812345678") == 28_000
    assert card.price("authentication_international", "393331112222") == 22_400
    assert card.price("marketing", "61412345678") == 60_400
    assert card.price("service", "393331112222") == 0
    with pytest.raises(ValueError, match="no price for category 'marketing_lite'"):
        card.price("marketing_lite", "393331112222")


def test_expected_price_follows_the_free_windows(card):
    wa_id = "393331112222"
    closed = window_state(ConversationFacts(last_inbound_at=0), 10 * 86400)
    service = window_state(ConversationFacts(last_inbound_at=1000), 2000)
    free = window_state(ConversationFacts(1000, "ad", 1000, 1010), 3 * 86400)
    assert card.expected_price("utility", wa_id, closed) == 30_000
    assert card.expected_price("utility", wa_id, service) == 0
    assert card.expected_price("marketing", wa_id, service) == 69_100
    assert card.expected_price("authentication", wa_id, service) == 30_000
    assert card.expected_price("marketing", wa_id, free) == 0


def test_malformed_rate_card_is_refused():
    with pytest.raises(ValueError, match="'default'"):
        RateCard.from_dict({"rates": {"IT": {"marketing": "0.1"}}})
    with pytest.raises(ValueError, match="rates.IT"):
        RateCard.from_dict({"rates": {"default": {}, "IT": {"marketing": "cheap"}}})
    with pytest.raises(ValueError, match="without rates: FR"):
        RateCard.from_dict({"prefixes": {"33": "FR"}, "rates": {"default": {}}})


# -------------------------------------------------------- python -m tools.ledger
def test_ledger_command_tops_up_shows_the_balance_and_recent_lines(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'rasa.db'}"
    monkeypatch.setenv("WHATSAPP_STORE_URL", url)
    assert ledger_main(["top-up", "25.5", "--note", "invoice 42"]) == 0
    assert "added 25.50" in capsys.readouterr().out
    engine = create_engine(url)
    reserve(engine, "5", 69_100)
    engine.dispose()
    assert ledger_main(["balance", "--db-url", url]) == 0
    assert capsys.readouterr().out.splitlines() == ["available 25.4309 USD", "reserved  0.0691 USD"]
    assert ledger_main(["recent", "--limit", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "reservation" in lines[0] and "-0.0691 USD  follow_up utility IT" in lines[0]
    assert "top_up" in lines[1] and "+25.50 USD  invoice 42" in lines[1]


def test_ledger_command_refuses_a_bad_amount(tmp_path, capsys):
    assert ledger_main(["--db-url", f"sqlite:///{tmp_path / 'x.db'}", "top-up", "ten"]) == 1
    assert "is not an amount" in capsys.readouterr().err
