"""Database helpers for the pipeline's bulk reads and writes.

* `rows_write`: COPY on PostgreSQL, bulk_create elsewhere. A chunk writes a few thousand
  rows; building an INSERT (and model instances) for them costs more in Python than the
  database spends storing them, while COPY streams plain tuples.
* `__in_array`: `field = ANY(%s)` with one array parameter on PostgreSQL instead of `IN`
  with one placeholder per id (thousands of placeholders cost more to build and parse
  than the query costs to run); an ordinary `IN` elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from uuid import UUID

from django.db import connection, models
from django.db.models import Lookup


class InArray(Lookup):
    lookup_name = "in_array"
    prepare_rhs = False  # a list of ids, not one UUID

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [v if isinstance(v, UUID) else UUID(str(v)) for v in self.rhs]
        if not values:
            return "1 = 0", []
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%b::uuid[])", [*lhs_params, values]  # binary: see cdp.core.bulk.any_of
        prepared = [self.lhs.output_field.get_db_prep_value(v, connection) for v in values]
        return f"{lhs} IN ({', '.join(['%s'] * len(prepared))})", [*lhs_params, *prepared]


# On UUID columns and on foreign keys to UUID primary keys (Event.profile).
models.UUIDField.register_lookup(InArray)
models.ForeignKey.register_lookup(InArray)


def rows_write(model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert plain tuples (values in `fields` order, by attname) inside the caller's transaction."""
    rows = list(rows)
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(fields, row))) for row in rows], batch_size=2000)
        return len(rows)
    meta = {f.attname: f for f in model._meta.concrete_fields}
    json_columns = [i for i, name in enumerate(fields) if isinstance(meta[name], models.JSONField)]
    columns = ", ".join(connection.ops.quote_name(meta[name].column) for name in fields)
    statement = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            if json_columns:
                row = list(row)
                for i in json_columns:
                    row[i] = json.dumps(row[i], ensure_ascii=False)
            copy.write_row(row)
    return len(rows)


def raw_rows(queryset) -> list[tuple]:
    """The queryset's rows as the driver returns them, without Django's per-value converters
    (on a million rows those cost more than the query). UUIDs may come back as strings:
    pass them through `as_uuid`."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def as_uuid(value) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
