"""`manage.py create_api_token USERNAME`: print a new API token (its last line) for a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.permissions import API_CLIENTS as API_CLIENTS_GROUP
from orders.permissions import ensure_groups
from orders.tokens import token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it; only a hash is stored, so keep it now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the token (shown in admin).")
        parser.add_argument(
            "--create-user",
            action="store_true",
            help=f"Create the user if missing, in the '{API_CLIENTS_GROUP}' group.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = options["username"]
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            if not options["create_user"]:
                raise CommandError(f"no user {username!r}; create it first or pass --create-user")
            user = User.objects.create_user(**{User.USERNAME_FIELD: username})  # no password: API only
            ensure_groups()
            user.groups.add(Group.objects.get(name=API_CLIENTS_GROUP))
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        token = token_create(user=user, name=options["name"])
        self.stdout.write(f"API token for {username} (shown once; send it as 'Authorization: Bearer <token>'):")
        self.stdout.write(token)
