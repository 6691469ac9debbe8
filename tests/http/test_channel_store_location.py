"""The channel's database beside Rasa's SQLite tracker store, and the warning an upgrade
from the single-file layout gets."""

import logging

import sqlalchemy as sa

from connectors.whatsapp_connector import warn_about_tables_left_behind
from whatsapp_core.schema import metadata
from whatsapp_core.store_location import channel_store_url


def tracker(tmp_path, *, with_channel_tables: bool) -> sa.engine.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'rasa.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY)"))
    if with_channel_tables:
        metadata.create_all(engine)
    return engine


def test_tables_left_in_the_tracker_file_are_pointed_out(tmp_path, caplog):
    engine = tracker(tmp_path, with_channel_tables=True)
    store_url = channel_store_url(str(engine.url))
    assert store_url == f"sqlite:///{tmp_path / 'whatsapp.db'}"
    with caplog.at_level(logging.WARNING, logger="connectors.whatsapp_connector"):
        warn_about_tables_left_behind(engine, store_url)
    [record] = caplog.records
    assert "rasa.db holds the channel's tables" in record.getMessage()
    assert f"store_url: sqlite:///{tmp_path / 'rasa.db'}" in record.getMessage()


def test_a_tracker_file_without_them_or_the_same_file_is_quiet(tmp_path, caplog):
    engine = tracker(tmp_path, with_channel_tables=False)
    with caplog.at_level(logging.WARNING, logger="connectors.whatsapp_connector"):
        warn_about_tables_left_behind(engine, channel_store_url(str(engine.url)))
        metadata.create_all(engine)
        warn_about_tables_left_behind(engine, str(engine.url))  # store_url set to it
    assert caplog.records == []
