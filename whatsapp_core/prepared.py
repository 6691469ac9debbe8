"""Statements of a bot turn's bookkeeping, compiled once and run on SQLite's own cursor.

SQLAlchemy's ``Connection.execute`` of a statement built once still costs about 20 us per
call (cache key, execution context, result wrapping) against about 4 us for ``sqlite3``
to run it (measured on an indexed select of the inbox); a turn runs eight such
statements on Rasa's event loop. :class:`Prepared` compiles its statement once for
SQLite and runs it on the transaction's driver connection; on any other dialect
(PostgreSQL, on the store's thread) it hands the statement to SQLAlchemy unchanged, so
callers write one code path.

Only plain statements qualify: no expanding ``IN`` parameters and no values rendered at
execution time. Type conversions SQLAlchemy would apply (parameter and result
processors, e.g. ``Boolean``) are applied here too, so results match what SQLAlchemy
returns.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ClauseElement


@dataclass(frozen=True)
class _Compiled:
    """One compiled form: the SQL, its parameters in order with their defaults and
    conversions, and for a select the row type and the result conversions."""

    sql: str
    order: tuple[str, ...]
    defaults: Mapping[str, Any]
    bind_processors: Mapping[str, Callable[[Any], Any]]
    row_type: type | None
    result_processors: tuple[Callable[[Any], Any] | None, ...]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name in self.order:
            value = values[name] if name in values else self.defaults[name]
            processor = self.bind_processors.get(name)
            out.append(processor(value) if processor is not None else value)
        return tuple(out)

    def row(self, raw: tuple[Any, ...]) -> Any:
        assert self.row_type is not None
        if any(self.result_processors):
            pairs = zip(self.result_processors, raw, strict=True)
            raw = tuple(p(v) if p is not None else v for p, v in pairs)
        return self.row_type(*raw)


class Prepared:
    """A Core statement run through :meth:`rows`, :meth:`first`, :meth:`scalar`,
    :meth:`run` or :meth:`insert`; see the module docstring. Parameters are passed by
    bind name. ``keyed``: the columns the parameters name make the statement (an insert,
    or an update without ``values()``), one compiled form per set of them; every
    parameter of the compiled form must then be given."""

    def __init__(self, statement: ClauseElement, *, keyed: bool = False) -> None:
        self.statement = statement
        self._keyed = keyed or isinstance(statement, sa.sql.Insert)
        self._sqlite: dict[tuple[str, ...] | None, _Compiled] = {}

    def _compiled(self, connection: Connection, values: Mapping[str, Any]) -> _Compiled | None:
        """The SQLite form for ``values``' columns (inserts), or None off SQLite."""
        dialect = connection.dialect
        if dialect.name != "sqlite":
            return None
        keys = tuple(sorted(values)) if self._keyed else None
        compiled = self._sqlite.get(keys)
        if compiled is None:
            compiled = self._sqlite[keys] = _compile(self.statement, dialect, keys)
        return compiled

    def rows(self, connection: Connection, values: Mapping[str, Any]) -> list[Any]:
        """Every row of a select (attribute access by column name)."""
        compiled = self._compiled(connection, values)
        if compiled is None:
            return list(connection.execute(self.statement, values).fetchall())
        cursor = _driver(connection).execute(compiled.sql, compiled.parameters(values))
        return [compiled.row(raw) for raw in cursor.fetchall()]

    def first(self, connection: Connection, values: Mapping[str, Any]) -> Any | None:
        """The first row of a select, or None."""
        compiled = self._compiled(connection, values)
        if compiled is None:
            return connection.execute(self.statement, values).first()
        raw = _driver(connection).execute(compiled.sql, compiled.parameters(values)).fetchone()
        return None if raw is None else compiled.row(raw)

    def scalar(self, connection: Connection, values: Mapping[str, Any]) -> Any | None:
        """The first column of the first row of a select, or None."""
        row = self.first(connection, values)
        return None if row is None else row[0]

    def run(self, connection: Connection, values: Mapping[str, Any]) -> int:
        """Run an update or delete; the number of rows it matched."""
        compiled = self._compiled(connection, values)
        if compiled is None:
            return connection.execute(self.statement, values).rowcount
        return _driver(connection).execute(compiled.sql, compiled.parameters(values)).rowcount

    def insert(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        """Run an insert of one row; its (single-column) primary key."""
        compiled = self._compiled(connection, values)
        if compiled is None:
            return connection.execute(self.statement, values).inserted_primary_key[0]
        cursor = _driver(connection).execute(compiled.sql, compiled.parameters(values))
        return cursor.lastrowid


def _driver(connection: Connection) -> Any:
    """The DBAPI connection under ``connection``, inside its transaction."""
    return connection.connection.dbapi_connection


def _compile(statement: ClauseElement, dialect: Any, keys: tuple[str, ...] | None) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    if "POSTCOMPILE" in compiled.string or any(
        bind.expanding or bind.literal_execute for bind in compiled.binds.values()
    ):
        raise ValueError(f"not a plain statement: {compiled.string}")
    order = tuple(compiled.positiontup or ())
    if keys is not None and not set(order) <= set(keys):
        # a column default SQLAlchemy would compute at execution time
        missing = sorted(set(order) - set(keys))
        raise ValueError(f"parameters {missing} not given: {compiled.string}")
    processors = {}
    for name, bind in compiled.binds.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    row_type = None
    result_processors: tuple[Callable[[Any], Any] | None, ...] = ()
    if isinstance(statement, sa.sql.Select):
        columns = list(statement.selected_columns)
        row_type = namedtuple("Row", [column.key for column in columns])
        result_processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in columns
        )
    # a parameter not given takes its statement's value (a literal); a required one raises
    defaults = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    return _Compiled(
        compiled.string, order, defaults, processors, row_type, result_processors
    )
