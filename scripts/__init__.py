"""The repository's commands: `make run` (devstack.py), `make bench` (bench.py), `make chaos` (chaos.py).

A package so that the tests can import `scripts.stack`, the one way to bring the stack up.
"""
