import threading

import pytest

from whatsapp_core import followups
from whatsapp_core.schema import metadata
from whatsapp_core.store import create_engine


@pytest.fixture
def engine(tmp_path):
    created = create_engine(f"sqlite:///{tmp_path / 'f.db'}")
    metadata.create_all(created)
    return created


def run(engine, fn, *args):
    with engine.begin() as connection:
        return fn(connection, *args)


def test_due_follow_up_is_claimed_once(engine):
    assert run(engine, followups.schedule, "c1", "pn", -1)
    assert run(engine, followups.claim_due) == [("c1", "pn")]
    assert run(engine, followups.claim_due) == []


def test_not_due_yet(engine):
    run(engine, followups.schedule, "c1", "pn", 3600)
    assert run(engine, followups.claim_due) == []
    assert run(engine, followups.pending, "c1") == "scheduled"


def test_contact_writing_cancels(engine):
    run(engine, followups.schedule, "c1", "pn", -1)
    run(engine, followups.cancel, "c1")
    assert run(engine, followups.claim_due) == []


def test_a_fired_follow_up_blocks_the_next_until_the_contact_writes(engine):
    run(engine, followups.schedule, "c1", "pn", -1)
    run(engine, followups.claim_due)
    assert not run(engine, followups.schedule, "c1", "pn", -1)
    assert run(engine, followups.claim_due) == []
    run(engine, followups.cancel, "c1")
    assert run(engine, followups.schedule, "c1", "pn", -1)
    assert run(engine, followups.claim_due) == [("c1", "pn")]


def test_rescheduling_pushes_the_due_time_back(engine):
    run(engine, followups.schedule, "c1", "pn", -1)
    run(engine, followups.schedule, "c1", "pn", 3600)
    assert run(engine, followups.claim_due) == []


def test_two_claimers_never_both_get_it(engine):
    for n in range(50):
        run(engine, followups.schedule, f"c{n}", "pn", -1)
    results: list = []

    def claim():
        results.extend(run(engine, followups.claim_due))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted({(f"c{n}", "pn") for n in range(50)})
