"""Core statements compiled once per dialect and run straight on the DBAPI cursor: the group commit's hot path.

`Connection.execute` costs some 19 µs a statement here, the same statement on the driver's cursor
some 4 µs, and every request runs several. The SQL and each parameter's conversion (a DateTime's
text on SQLite, a JSON column's serialization, a boolean) are SQLAlchemy's own, worked out once,
so what is stored is what SQLAlchemy would store; a driver's error is raised as SQLAlchemy's
(sa.exc.IntegrityError, ...). Rows come back as the driver returns them (named tuples), so a
statement returning a column that SQLAlchemy would convert is refused when it is compiled.
"""
from collections import namedtuple
from itertools import groupby

import sqlalchemy as sa

_REQUIRED = object()        # a parameter's default when its value must be given


class Compiled:
    """One statement's SQL for one dialect, its parameters' order and conversions, and its row type."""

    __slots__ = ("sql", "_names", "_defaults", "_converters", "_positional", "_row")

    def __init__(self, statement, dialect, column_keys=None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys, for_executemany=column_keys is not None)
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError(f"give every column that has a Python-side default: {statement}")
        if any(bind.callable for bind in compiled.bind_names):
            raise ValueError(f"a parameter's value is computed per execution: {statement}")
        if any(entry.type.dialect_impl(dialect).result_processor(dialect, None) for entry in compiled._result_columns):
            raise ValueError(f"a returned column needs SQLAlchemy's conversion: {statement}")
        binds = {name: (bind.type.dialect_impl(dialect).bind_processor(dialect),
                        _REQUIRED if bind.required else bind.effective_value)
                 for bind, name in compiled.bind_names.items()}
        self.sql, self._positional = compiled.string, compiled.positional
        self._names = compiled.positiontup if compiled.positional else list(binds)
        self._converters, self._defaults = zip(*(binds[name] for name in self._names)) if binds else ((), ())
        self._row = None

    def parameters(self, values):
        """`values` (by name) in the driver's paramstyle, converted as SQLAlchemy converts them."""
        given = [values[name] if default is _REQUIRED else values.get(name, default)
                 for name, default in zip(self._names, self._defaults)]
        converted = [value if convert is None else convert(value) for value, convert in zip(given, self._converters)]
        return converted if self._positional else dict(zip(self._names, converted))

    def rows(self, cursor):
        """The rows the last execution returned, as named tuples of its columns (their type made once)."""
        if cursor.description is None:
            return []
        if self._row is None:
            self._row = namedtuple("Row", [column[0] for column in cursor.description], rename=True)
        return list(map(self._row._make, cursor.fetchall()))


class Statements:
    """Every statement's `Compiled` for one dialect, made on first use."""

    def __init__(self, dialect):
        self.dialect = dialect
        self._compiled = {}

    def get(self, statement):
        return self._compiled.get(statement) or self._compile(statement, statement)

    def insert(self, table, column_keys):
        """`table`'s INSERT of the columns `column_keys` (a tuple), for one row or many."""
        key = (table, column_keys)
        return self._compiled.get(key) or self._compile(key, table.insert(), column_keys)

    def _compile(self, key, statement, column_keys=None):
        compiled = self._compiled[key] = Compiled(statement, self.dialect, column_keys)
        return compiled


class Result:
    """What `Cursor.execute` returns: the rows, and how many rows the statement changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows, rowcount):
        self._rows, self.rowcount = rows, rowcount

    def first(self):
        return self._rows[0] if self._rows else None

    def one(self):
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound(f"expected one row, got {len(self._rows)}")
        return self._rows[0]


class Cursor:
    """A DBAPI cursor of `connection` (a SQLAlchemy Connection, in its transaction) running `statements`.

    A driver's error is raised as SQLAlchemy's; one that lost the connection invalidates it, as
    SQLAlchemy would (the exception's `connection_invalidated` says so).
    """

    def __init__(self, connection, statements):
        self._connection = connection
        self._cursor = connection.connection.driver_connection.cursor()
        self._statements = statements
        self._error = statements.dialect.loaded_dbapi.Error

    def execute(self, statement, values):
        compiled = self._statements.get(statement)
        parameters = compiled.parameters(values)
        try:
            self._cursor.execute(compiled.sql, parameters)
            rows = compiled.rows(self._cursor)
        except self._error as exc:
            raise self._wrapped(exc, compiled.sql, parameters, False) from exc
        return Result(rows, self._cursor.rowcount)

    def insert(self, table, rows):
        """INSERT `rows` (dicts) into `table`: one executemany per run of rows naming the same columns."""
        for column_keys, same in groupby(rows, key=tuple):
            compiled = self._statements.insert(table, column_keys)
            parameters = [compiled.parameters(row) for row in same]
            try:
                self._cursor.executemany(compiled.sql, parameters)
            except self._error as exc:
                raise self._wrapped(exc, compiled.sql, parameters, True) from exc

    def _wrapped(self, exc, sql, parameters, many):
        dialect = self._statements.dialect
        lost = dialect.is_disconnect(exc, self._connection.connection.dbapi_connection, self._cursor)
        if lost:
            self._connection.invalidate(exc)
        return sa.exc.DBAPIError.instance(sql, parameters, exc, self._error, connection_invalidated=lost,
                                          dialect=dialect, ismulti=many)
