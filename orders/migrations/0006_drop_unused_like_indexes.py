"""Drop the LIKE-pattern indexes PostgreSQL got beside event ids and payment ids.

Django adds a `varchar_pattern_ops` index to every indexed CharField on PostgreSQL, for LIKE
queries. Nothing searches event ids or payment ids by prefix (admin searches them exactly), so
these only cost every insert. The one on orders.id stays: the console searches order ids by
prefix. SQLite has no such indexes.
"""

from django.db import migrations

COLUMNS = [("events", "id"), ("payments", "payment_id"), ("orders", "payment_id")]


def drop_like_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table, column in COLUMNS:
            for name, info in connection.introspection.get_constraints(cursor, table).items():
                if info["index"] and info["columns"] == [column] and name.endswith("_like"):
                    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [("orders", "0005_one_index_per_foreign_key")]

    operations = [migrations.RunPython(drop_like_indexes, migrations.RunPython.noop)]
