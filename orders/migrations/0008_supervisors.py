"""Create the Supervisors group: the Reviewers' permissions plus taking over a claim."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPERVISORS = "Supervisors"
CODENAMES = ["approve_order", "cancel_order", "change_order_address", "view_order", "reassign_order"]


def create_supervisors(apps: Any, schema_editor: Any) -> None:
    # Permissions are normally created after all migrations; make sure reassign_order exists now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=SUPERVISORS)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="orders", codename__in=CODENAMES))


def remove_supervisors(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name=SUPERVISORS).delete()


class Migration(migrations.Migration):
    dependencies = [("orders", "0007_review_fields")]

    operations = [migrations.RunPython(create_supervisors, remove_supervisors)]
