"""Fast bulk inserts: PostgreSQL COPY on the hot ingestion paths, bulk_create elsewhere.

Django's bulk_create builds one INSERT with a placeholder per value; for thousands of rows
psycopg spends more time splitting that query than the server spends storing it. COPY
streams the rows instead. Auto-increment primary keys are drawn from the table's sequence
first, so callers get their ids back exactly as with bulk_create.
"""

from __future__ import annotations

from django.db import connection, models


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
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def _assign_sequence_ids(model: type[models.Model], objs: list[models.Model]) -> None:
    if not objs:
        return
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                       [table, column, len(objs)])
        for obj, (next_id,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = next_id
