#!/bin/sh
# Temporal's two PostgreSQL databases (default store and visibility): created if missing, schema
# set up and brought to the version this admin-tools image ships. Safe to run again (each `up`
# does): an up-to-date schema is left as it is. Runs in temporalio/admin-tools.
set -eu
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" --pw "$POSTGRES_PWD" "$@"
}

for store in "temporal:temporal" "temporal_visibility:visibility"; do
    database=${store%%:*}
    schema=${store#*:}
    echo "setting up $database ($schema schema)"
    # Fails when the database exists (a second `up`); a real connection problem fails the next step.
    sql_tool --db "$database" create-database || echo "$database exists already"
    sql_tool --db "$database" setup-schema -v 0.0
    sql_tool --db "$database" update-schema -d "$SCHEMA_DIR/$schema/versioned"
done
echo "Temporal's databases are ready"
