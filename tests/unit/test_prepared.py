"""Prepared statements on SQLite's cursor give what SQLAlchemy gives."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from whatsapp_core.prepared import Prepared

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("at", sa.Float),
    sa.Column("tries", sa.Integer, nullable=False, default=0),
)
BY_NAME = (
    sa.select(things.c.id, things.c.name, things.c.flag, things.c.at)
    .where(things.c.name == sa.bindparam("name"))
    .where(things.c.flag == sa.true())
    .order_by(things.c.id)
)


@pytest.fixture
def connection(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}", future=True)
    metadata.create_all(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def test_insert_and_select_match_sqlalchemy(connection):
    insert = Prepared(things.insert())
    first = insert.insert(connection, {"name": "a", "flag": True, "at": 1.5, "tries": 0})
    second = insert.insert(connection, {"name": "a", "flag": False, "at": None, "tries": 2})
    assert (first, second) == (1, 2)
    prepared = Prepared(BY_NAME).rows(connection, {"name": "a"})
    expected = connection.execute(BY_NAME, {"name": "a"}).fetchall()
    assert [tuple(row) for row in prepared] == [tuple(row) for row in expected] == [
        (1, "a", True, 1.5)
    ]
    assert prepared[0].flag is True and prepared[0].name == "a"


def test_first_scalar_and_none(connection):
    Prepared(things.insert()).insert(connection, {"name": "b", "flag": True, "at": 2.0, "tries": 0})
    by_name = Prepared(BY_NAME)
    assert by_name.first(connection, {"name": "b"}).at == 2.0
    assert by_name.scalar(connection, {"name": "b"}) == 1
    assert by_name.first(connection, {"name": "zz"}) is None
    assert by_name.scalar(connection, {"name": "zz"}) is None


def test_updates_and_deletes_count_their_rows(connection):
    insert = Prepared(things.insert())
    for name in ("c", "c", "d"):
        insert.insert(connection, {"name": name, "flag": True, "at": 0.0, "tries": 0})
    rename = Prepared(
        things.update().where(things.c.name == sa.bindparam("old")).values(name=sa.bindparam("new"))
    )
    assert rename.run(connection, {"old": "c", "new": "e"}) == 2
    keyed = Prepared(things.update().where(things.c.id == sa.bindparam("thing_id")), keyed=True)
    assert keyed.run(connection, {"thing_id": 3, "tries": 7}) == 1
    assert connection.execute(sa.select(things.c.tries).where(things.c.id == 3)).scalar() == 7
    delete = Prepared(things.delete().where(things.c.name == sa.bindparam("name")))
    assert delete.run(connection, {"name": "e"}) == 2
    assert delete.run(connection, {"name": "e"}) == 0


def test_a_missing_parameter_raises(connection):
    with pytest.raises(KeyError):
        Prepared(BY_NAME).rows(connection, {})


def test_a_column_default_left_to_sqlalchemy_is_refused(connection):
    with pytest.raises(ValueError, match="tries"):
        Prepared(things.insert()).insert(connection, {"name": "f", "flag": True, "at": None})


def test_an_expanding_parameter_takes_a_placeholder_per_item(connection):
    insert = Prepared(things.insert())
    for name in ("g", "h", "i"):
        insert.insert(connection, {"name": name, "flag": True, "at": 0.0, "tries": 0})
    statement = Prepared(
        sa.select(things.c.name)
        .where(things.c.id.in_(sa.bindparam("ids", expanding=True)))
        .where(things.c.tries < sa.bindparam("most"))
        .order_by(things.c.id)
    )
    assert [row.name for row in statement.rows(connection, {"ids": [1, 3], "most": 1})] == ["g", "i"]
    assert [row.name for row in statement.rows(connection, {"ids": [2], "most": 1})] == ["h"]
    assert statement.rows(connection, {"ids": [], "most": 1}) == []


def test_run_many_updates_each_row(connection):
    insert = Prepared(things.insert())
    for name in ("j", "k"):
        insert.insert(connection, {"name": name, "flag": True, "at": 0.0, "tries": 0})
    keyed = Prepared(things.update().where(things.c.id == sa.bindparam("thing_id")), keyed=True)
    keyed.run_many(connection, [{"thing_id": 1, "tries": 4}, {"thing_id": 2, "tries": 5}])
    assert connection.execute(sa.select(things.c.tries).order_by(things.c.id)).scalars().all() == [4, 5]


def test_a_value_rendered_at_execution_is_refused(connection):
    statement = sa.select(things.c.id).where(things.c.id == sa.bindparam("x", literal_execute=True))
    with pytest.raises(ValueError, match="not a plain statement"):
        Prepared(statement).rows(connection, {"x": 1})
