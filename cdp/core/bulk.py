"""Fast bulk inserts: PostgreSQL COPY on the hot ingestion paths, bulk_create elsewhere.

Django's bulk_create builds one INSERT with a placeholder per value; for thousands of rows
psycopg spends more time splitting that query than the server spends storing it. COPY
streams the rows instead. Auto-increment primary keys are drawn from the table's sequence
first, so callers get their ids back exactly as with bulk_create.

`insert_rows` goes further for the hottest paths: rows are plain tuples, never model
instances (building a Django model costs more than encrypting a field), sent as binary
COPY (a quarter of text COPY's client time and under half its server time for rows of
uuids, ciphertexts and timestamps). `any_of` keeps big IN lists one array parameter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import BooleanField, Case, Q, Value, When
from django.db.models.expressions import RawSQL
from psycopg.types.json import Jsonb, set_json_dumps

from cdp.core.json_codec import json_bytes


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: list[Sequence]) -> None:
    """Insert rows given as value tuples in the order of `columns` (field attnames).

    The caller supplies every column it names, defaults included (no pre_save runs):
    uuids, text, bytes, numbers, booleans and aware datetimes as they are, JSON fields
    as Python values. On PostgreSQL one binary COPY; elsewhere one prepared INSERT run per
    row.
    """
    if not rows:
        return
    meta = model._meta
    fields = [meta.get_field(column) for column in columns]
    quote = connection.ops.quote_name
    names = ", ".join(quote(field.column) for field in fields)
    if connection.vendor != "postgresql":
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({placeholders})"  # noqa: S608
        # The connection itself, not django.db.connection: each attribute read through that
        # proxy is a thread-local lookup, a third of preparing a value (SQLite's demo load).
        wrapper = connections[DEFAULT_DB_ALIAS]
        prepare = [field.get_db_prep_save for field in fields]
        prepared = [[None if value is None else prep(value, wrapper) for prep, value in zip(prepare, row)]
                    for row in rows]
        with connection.cursor() as cursor:
            cursor.executemany(sql, prepared)
        return
    json_columns = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    encoders = {fields[i].encoder for i in json_columns}
    if len(encoders) > 1:
        dumps = {i: _json_dumps(fields[i].encoder) for i in json_columns}
        rows = [_json_wrapped(row, dumps) for row in rows]
    with connection.cursor() as cursor:
        if len(encoders) == 1:
            # One encoder for every JSON column (the usual case): the cursor's jsonb dumper
            # uses it, and the rows go as they are, with no wrapper object per value.
            set_json_dumps(_json_dumps(encoders.pop()), context=cursor.cursor)
        # Binary COPY: no text to format here or to parse on the server (uuids, bytea,
        # timestamps); each column is dumped as the type the table has.
        oids = _column_types(cursor, meta.db_table, [field.column for field in fields])
        # The raw psycopg cursor bypasses Django's error translation: a unique violation
        # must still be an IntegrityError (a deadlock an OperationalError) for the
        # callers that retry on them.
        with connection.wrap_database_errors, cursor.cursor.copy(
                f"COPY {quote(meta.db_table)} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(oids)
            write = copy.write_row
            for row in rows:
                write(row)


class _JsonDumps:
    """orjson, and the field's encoder only for what orjson leaves to it (datetimes,
    decimals, ...): PostgreSQL stores the parsed value, so the text's spelling does not
    matter. An object rather than a closure: psycopg caches the dumper class it makes for
    it (and warns, once a call, about closures)."""

    __slots__ = ("default",)

    def __init__(self, encoder: type[json.JSONEncoder] | None):
        self.default = encoder().default if encoder is not None else None

    def __call__(self, value) -> bytes:
        return json_bytes(value, default=self.default)


@lru_cache(maxsize=16)
def _json_dumps(encoder: type[json.JSONEncoder] | None) -> _JsonDumps:
    return _JsonDumps(encoder)  # one per encoder, so psycopg reuses its dumper class


def _json_wrapped(row: Sequence, dumps: dict) -> Sequence:
    if all(row[i] is None for i in dumps):
        return row  # e.g. an encrypted attribute: nothing to wrap, no copy
    row = list(row)
    for i, dump in dumps.items():
        if row[i] is not None:
            row[i] = Jsonb(row[i], dumps=dump)
    return row


_COLUMN_TYPES: dict[tuple, list[int]] = {}


def _column_types(cursor, table: str, columns: list[str]) -> list[int]:
    """The type oids of a table's columns, read from the catalog once per process.

    Only built-in types are used by the tables written here, and their oids are the same
    in every database, so a test database made after the first read finds them right.
    """
    key = (table, tuple(columns))
    if key not in _COLUMN_TYPES:
        cursor.execute("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
                       "AND attname = ANY(%s) AND NOT attisdropped", [table, list(columns)])
        types = dict(cursor.fetchall())
        _COLUMN_TYPES[key] = [int(types[column]) for column in columns]
    return _COLUMN_TYPES[key]


def any_of(model: type[models.Model], field_name: str, values) -> Q | RawSQL:
    """A filter for `field_name IN values` that stays one small statement for big lists.

    On PostgreSQL `column = ANY(%b)` with the values as one array parameter: the SQL text
    is the same for every list, so psycopg prepares and caches its conversion once, where
    `IN (%s, %s, ...)` with thousands of placeholders is split and converted again for
    each batch. Elsewhere the plain `__in` lookup.
    """
    values = list(values)
    if connection.vendor != "postgresql" or not values:
        return Q(**{f"{field_name}__in": values})
    quote = connection.ops.quote_name
    column = f"{quote(model._meta.db_table)}.{_any_condition(model, field_name)}"
    return RawSQL(column, (values,), output_field=BooleanField())  # noqa: S611


def _any_condition(model: type[models.Model], field_name: str) -> str:
    """`column = ANY(%b::type[])` for one array parameter holding the values.

    %b: the array travels in binary, which psycopg builds several times faster than text
    (for a batch's 2,000 blind indexes, 0.5 ms instead of 5-15 ms); the cast names its
    type (text for any character column, so no value is cut to a length).
    """
    field = model._meta.get_field(field_name)
    return f"{connection.ops.quote_name(field.column)} = ANY(%b::{array_type(field)}[])"


def rows_any_of(model: type[models.Model], columns: Sequence[str], field_name: str, values,
                **equal) -> list[tuple]:
    """`values_list(*columns)` of the rows whose `field_name` is one of `values` (and whose
    `equal` fields have those values), without the ORM's per-row work: a batch's lookups
    return thousands of rows. On PostgreSQL one `= ANY(%b)` statement (see any_of) read
    as plain tuples (uuids, text, aware datetimes, as the ORM gives them); elsewhere the
    ORM. Columns and fields are attnames (`profile_id`).
    """
    values = list(values)
    if not values:
        return []
    if connection.vendor != "postgresql":
        return list(model._default_manager.filter(**{f"{field_name}__in": values}, **equal).values_list(*columns))
    meta, quote = model._meta, connection.ops.quote_name
    conditions, params = [_any_condition(model, field_name)], [values]
    for name, value in equal.items():
        conditions.append(f"{quote(meta.get_field(name).column)} = %s")
        params.append(value)
    names = ", ".join(quote(meta.get_field(column).column) for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {names} FROM {quote(meta.db_table)} WHERE {' AND '.join(conditions)}",  # noqa: S608
                       params)
        return cursor.fetchall()


def array_type(field: models.Field) -> str:
    """The PostgreSQL element type for an array parameter compared with this column."""
    db_type = field.db_type(connection)
    return "text" if db_type.startswith(("varchar", "char", "text")) else db_type


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """`count` new values of an auto-increment primary key, in increasing order.

    PostgreSQL draws them from the table's sequence. SQLite has none to draw from, but
    its write transactions are exclusive, so the next values after both the highest id
    and the AUTOINCREMENT high-water mark are free until this transaction ends.
    """
    if count <= 0:
        return []
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [table, column, count])
            return [row[0] for row in cursor.fetchall()]
        quote = connection.ops.quote_name
        cursor.execute(f"SELECT MAX({quote(column)}) FROM {quote(table)}")  # noqa: S608
        highest = cursor.fetchone()[0] or 0
        cursor.execute("SELECT MAX(seq) FROM sqlite_sequence WHERE name = %s", [table])
        highest = max(highest, cursor.fetchone()[0] or 0)
    return list(range(highest + 1, highest + 1 + count))


def bulk_insert(model: type[models.Model], objs: list[models.Model]) -> list[models.Model]:
    if not objs:
        return objs
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objs, batch_size=1000)
    meta = model._meta
    fields = [f for f in meta.concrete_fields]
    if isinstance(meta.pk, models.AutoField | models.BigAutoField):
        _assign_sequence_ids(model, [obj for obj in objs if obj.pk is None])
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    readers = [_column_reader(field) for field in fields]
    copy_sql = f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(copy_sql) as copy:
        for obj in objs:
            copy.write_row([read(obj) for read in readers])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def _column_reader(field: models.Field):
    """How to get one column's database value from an object, cheaply.

    Plain values (uuid, bytes, text, numbers, aware datetimes) go to COPY as they are;
    only fields that transform on save take Django's generic (slower) path.
    """
    needs_django = (
        isinstance(field, models.JSONField)
        or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        or (field.has_default() and not field.primary_key)
    )
    if needs_django:
        return lambda obj: field.get_db_prep_save(field.pre_save(obj, True), connection)
    attname = field.attname
    return lambda obj: getattr(obj, attname)


def _assign_sequence_ids(model: type[models.Model], objs: list[models.Model]) -> None:
    if not objs:
        return
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                       [table, column, len(objs)])
        for obj, (next_id,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = next_id


def bulk_update_fields(model: type[models.Model], objs: list[models.Model], field_names: list[str]) -> None:
    """Update the named fields of many rows in one statement.

    On PostgreSQL each column travels as one array parameter (`UPDATE … FROM unnest(…)`),
    where bulk_update would build a CASE expression with a placeholder per row and value.
    """
    if not objs:
        return
    if connection.vendor != "postgresql":
        _update_each(model, objs, field_names)
        return
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    columns = [meta.pk, *fields]
    quote = connection.ops.quote_name
    arrays = [[column.get_db_prep_save(getattr(obj, column.attname), connection) for obj in objs]
              for column in columns]
    unnest = ", ".join(f"%b::{column.db_type(connection)}[]" for column in columns)  # binary: see any_of
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    assignments = ", ".join(f"{quote(field.column)} = v.c{i + 1}" for i, field in enumerate(fields))
    # Only quoted table/column names from model metadata are formatted in; values are parameters.
    sql = (f"UPDATE {quote(meta.db_table)} AS t SET {assignments} FROM unnest({unnest}) AS v({names}) "  # noqa: S608
           f"WHERE t.{quote(meta.pk.column)} = v.c0")
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)


def update_mapped(model: type[models.Model], match_field: str, set_field: str, mapping: dict, **values) -> None:
    """For each row whose `match_field` is a key of `mapping`: set `set_field` to the
    mapped value (and the named fields to `values`), in one statement.

    On PostgreSQL the mapping travels as two array parameters (`UPDATE … FROM unnest`),
    where a CASE expression with a branch per key costs Django milliseconds to build for a
    few hundred keys. Elsewhere the CASE expression.
    """
    if not mapping:
        return
    meta = model._meta
    match, target = meta.get_field(match_field), meta.get_field(set_field)
    if connection.vendor != "postgresql":
        case = Case(*[When(**{match.attname: old}, then=Value(new, output_field=target))
                      for old, new in mapping.items()], output_field=target)
        model._base_manager.filter(**{f"{match.attname}__in": list(mapping)}).update(**{target.attname: case},
                                                                                      **values)
        return
    quote = connection.ops.quote_name
    others = [meta.get_field(name) for name in values]
    assignments = ", ".join([f"{quote(target.column)} = m.new", *(f"{quote(f.column)} = %s" for f in others)])
    sql = (f"UPDATE {quote(meta.db_table)} AS t SET {assignments} "  # noqa: S608 (names from model metadata)
           f"FROM unnest(%b::{array_type(match)}[], %b::{array_type(target)}[]) AS m(old, new) "
           f"WHERE t.{quote(match.column)} = m.old")
    params = [f.get_db_prep_save(values[f.name], connection) for f in others]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, list(mapping), list(mapping.values())])


def _update_each(model: type[models.Model], objs: list[models.Model], field_names: list[str]) -> None:
    """One prepared UPDATE run for every row (executemany): on SQLite, far cheaper than
    bulk_update's CASE expressions, and the statement is compiled once."""
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    rows = [[field.get_db_prep_save(getattr(obj, field.attname), connection) for field in fields]
            + [meta.pk.get_db_prep_save(obj.pk, connection)] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
