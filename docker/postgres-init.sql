-- Runs once, when the postgresql service initialises an empty data volume (as the superuser the
-- image creates, `temporal`, which Temporal's schema job also uses). The app gets a role of its
-- own that owns its database and nothing else: it cannot read Temporal's databases or create
-- roles. Change the password for anything but a local try-out (and ORDERS_DB_PASSWORD with it):
--   docker compose exec postgresql psql -U temporal -c "ALTER ROLE orders PASSWORD '...'"
CREATE ROLE orders LOGIN PASSWORD 'orders' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE orders OWNER orders;
REVOKE ALL ON DATABASE orders FROM PUBLIC;
