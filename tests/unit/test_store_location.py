"""Where the channel's database is, for rasa run (from the tracker store) and the others."""

import pytest

from whatsapp_core.store_location import (
    DEFAULT_STORE_URL,
    STORE_URL_ENV,
    channel_store_url,
    store_url_from_env,
)


@pytest.mark.parametrize(
    ("tracker_store_url", "expected"),
    [
        (None, "sqlite:///whatsapp.db"),
        ("sqlite:///rasa.db", "sqlite:///whatsapp.db"),
        ("sqlite:////var/lib/bot/rasa.db", "sqlite:////var/lib/bot/whatsapp.db"),
        ("sqlite:///data/trackers.sqlite", "sqlite:///data/whatsapp.db"),
        ("sqlite:///rasa.db?timeout=30", "sqlite:///whatsapp.db?timeout=30"),
        ("sqlite://", "sqlite:///whatsapp.db"),
        ("sqlite:///:memory:", "sqlite:///whatsapp.db"),
        (
            "postgresql://rasa:s3cret@db.internal:5432/rasa",
            "postgresql://rasa:s3cret@db.internal:5432/rasa",
        ),
    ],
)
def test_sqlite_trackers_get_a_sibling_file_servers_are_shared(tracker_store_url, expected):
    assert channel_store_url(tracker_store_url) == expected


def test_the_default_tracker_store_and_the_action_servers_default_agree():
    # endpoints.yml ships `db: rasa.db`; the action server and tools default to the same file
    assert channel_store_url("sqlite:///rasa.db") == DEFAULT_STORE_URL == store_url_from_env({})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DEFAULT_STORE_URL),
        ({STORE_URL_ENV: ""}, DEFAULT_STORE_URL),
        ({STORE_URL_ENV: "postgresql://h/db"}, "postgresql://h/db"),
    ],
)
def test_processes_without_a_tracker_store_read_the_environment(environ, expected):
    assert store_url_from_env(environ) == expected
