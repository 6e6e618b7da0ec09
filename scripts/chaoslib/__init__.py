"""The parts of the chaos run (scripts/chaos.py), by noun:

- stack.py: the run's own stack (scripts.stack), and the faults done to it;
- faults.py: the record of faults and the schedule that decides the next one;
- poller.py: the database as watched during the run (order states, charges in flight);
- api.py: the JSON API client that retries through outages and notes every attempt;
- scenarios.py: the seeded mix of orders and what each must end as;
- histories.py: what Temporal recorded for each order;
- facts.py: the database's view after the drain, and the event trails it must show;
- checks.py: the checked lines; report.py: the table and the JSON figures;
- run.py: setup, drive with faults, drain, check.
"""
