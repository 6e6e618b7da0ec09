"""PostgreSQL for Order Lifecycle: Django's backend, lending only live pooled connections (base.py)."""
