"""Statements of the hot paths, compiled once and run on SQLite's own cursor.

SQLAlchemy's ``Connection.execute`` of a statement built once still costs about 20 us per
call (cache key, execution context, result wrapping) against about 4 us for ``sqlite3``
to run it (measured on an indexed select of the inbox); a bot turn runs eight such
statements on Rasa's event loop, and the ingress process three per batch of statuses.
:class:`Prepared` compiles its statement once for SQLite and runs it on the
transaction's driver connection; on any other dialect (PostgreSQL, on the store's
thread) it hands the statement to SQLAlchemy unchanged, so callers write one code path.

Expanding ``IN`` parameters get one placeholder per item at each call; other values
rendered at execution time are refused. Type conversions SQLAlchemy would apply
(parameter and result processors, e.g. ``Boolean``) are applied here too, so results
match what SQLAlchemy returns.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
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
    expanding: frozenset[str]
    row_type: type | None
    result_processors: tuple[Callable[[Any], Any] | None, ...]

    def _converted(self, name: str, value: Any) -> Any:
        processor = self.bind_processors.get(name)
        return value if processor is None else processor(value)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's parameters for ``values`` (none of them expanding)."""
        return tuple(
            self._converted(name, values[name] if name in values else self.defaults[name])
            for name in self.order
        )

    def bound(self, values: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The SQL and the driver's parameters for ``values``: an expanding parameter's
        list becomes one placeholder per item (``IN ()`` for none, which SQLite accepts)."""
        if not self.expanding:
            return self.sql, self.parameters(values)
        sql = self.sql
        out: list[Any] = []
        for name in self.order:
            if name not in self.expanding:
                value = values[name] if name in values else self.defaults[name]
                out.append(self._converted(name, value))
                continue
            items = [self._converted(name, item) for item in values[name]]
            out.extend(items)
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * len(items)))
        return sql, tuple(out)

    def row(self, raw: tuple[Any, ...]) -> Any:
        """A driver's row as a named tuple, converted as SQLAlchemy would convert it."""
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
        """The SQLite form (for a keyed statement: for ``values``' columns), or None off
        SQLite."""
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
        cursor = driver(connection).execute(*compiled.bound(values))
        return [compiled.row(raw) for raw in cursor.fetchall()]

    def first(self, connection: Connection, values: Mapping[str, Any]) -> Any | None:
        """The first row of a select, or None."""
        compiled = self._compiled(connection, values)
        if compiled is None:
            return connection.execute(self.statement, values).first()
        raw = driver(connection).execute(*compiled.bound(values)).fetchone()
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
        return driver(connection).execute(*compiled.bound(values)).rowcount

    def run_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run an update, delete or insert once per item of ``rows`` (``executemany``;
        for a keyed statement the items name the same columns)."""
        if not rows:
            return
        compiled = self._compiled(connection, rows[0])
        if compiled is None:
            connection.execute(self.statement, list(rows))
            return
        assert not compiled.expanding, "executemany takes no expanding parameter"
        driver(connection).executemany(compiled.sql, [compiled.parameters(r) for r in rows])

    def insert(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        """Run an insert of one row; its (single-column) primary key."""
        compiled = self._compiled(connection, values)
        if compiled is None:
            return connection.execute(self.statement, values).inserted_primary_key[0]
        return driver(connection).execute(*compiled.bound(values)).lastrowid


def driver(connection: Connection) -> Any:
    """The DBAPI connection under ``connection``, inside its transaction."""
    return connection.connection.dbapi_connection


def _compile(statement: ClauseElement, dialect: Any, keys: tuple[str, ...] | None) -> _Compiled:
    """Compile ``statement`` for ``dialect`` (with ``keys`` as its columns when keyed);
    ValueError for a statement :class:`Prepared` cannot run on the driver."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    binds = compiled.binds
    expanding = frozenset(name for name, bind in binds.items() if bind.expanding)
    if any(bind.literal_execute and not bind.expanding for bind in binds.values()) or any(
        f"__[POSTCOMPILE_{name}]" not in compiled.string for name in expanding
    ):
        raise ValueError(f"not a plain statement: {compiled.string}")
    order = tuple(compiled.positiontup or ())
    # a parameter not given takes its statement's value (a literal); a required one raises
    defaults = {
        name: bind.effective_value
        for name, bind in binds.items()
        if not bind.required and (bind.value is not None or bind.callable is not None)
    }
    if keys is not None and not set(order) <= set(keys) | set(defaults):
        # e.g. a column default SQLAlchemy would compute at execution time
        missing = sorted(set(order) - set(keys) - set(defaults))
        raise ValueError(f"parameters {missing} not given: {compiled.string}")
    processors = {}
    for name, bind in binds.items():
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
    return _Compiled(
        compiled.string, order, defaults, processors, expanding, row_type, result_processors
    )
