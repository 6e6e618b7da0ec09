"""The parts of the benchmark (scripts/bench.py), by noun:

- stack.py: the stack one run measures (scripts.stack on free ports, a fresh database, tmpfs);
- floor.py: the floor's bare workflows and the worker process that hosts them;
- clients.py: the Temporal client side (the floor's driver, poller checks, result waiting);
- driver.py: our orders driven through the JSON API, and the database's view of them;
- measure.py: CPU, memory and PostgreSQL figures from /proc and pg_stat_database; percentiles;
- phases.py: the run itself, phase by phase;
- scale.py: 100,000 orders in the database and the pages timed over HTTP;
- report.py: ratios and targets, the table, the JSON's header.

Nothing here imports the app (Django): the benchmark drives it from outside, as a client would.
"""
