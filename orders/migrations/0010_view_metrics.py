"""The permission `orders.view_metrics`: reading the web app's Prometheus metrics (GET /metrics)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("orders", "0009_notes")]

    operations = [
        migrations.AlterModelOptions(
            name="order",
            options={
                "permissions": [
                    ("approve_order", "Can approve an order awaiting review"),
                    ("cancel_order", "Can cancel an order"),
                    ("change_order_address", "Can change an order's shipping address"),
                    ("reassign_order", "Can take over another reviewer's claim on an order"),
                    ("view_metrics", "Can read the web app's Prometheus metrics"),
                ]
            },
        ),
    ]
