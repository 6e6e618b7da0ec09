"""Who may act in Django admin: staff only, each change and action needs its permission and its CSRF
token, and a NUL byte in a staff URL or form is a 400 or a field error, never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from orders.models import ApiToken
from orders.permissions import REVIEWERS, ensure_groups
from orders.tests.factories import make_order
from orders.tests.security.helpers import ADDRESS, PASSWORD, PERSONAS, Door, persona_client, signed_in, written
from orders.tokens import token_create

NUL_URLS = [
    "/admin/orders/order/abc%00def/change/",
    "/admin/orders/event/abc%00def/change/",
    "/admin/orders/payment/abc%00def/change/",
    "/admin/orders/order/?q=abc%00def",
    "/admin/orders/order/?state__exact=%00",
    "/review/orders/abc%00def/",
    "/review/?q=abc%00def",
    "/review/?state%00=x",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_byte_in_a_staff_url_is_a_400_not_a_500(db: None, url: str) -> None:
    boss = User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    client = Client(raise_request_exception=False)
    client.force_login(boss)
    response = client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_the_admin_address_form_refuses_a_nul_byte_with_a_field_error(reviewer: User, no_temporal: None) -> None:
    order = make_order()
    client = signed_in(reviewer)
    url = reverse("admin:orders_order_change", args=[order.id])
    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
    before = written()
    response = client.post(url, {**data, "street": "1\x00 Main"})
    assert response.status_code == 200
    assert "street" in response.context["adminform"].form.errors
    assert b"Null characters are not allowed." in response.content
    assert written() == before


ADMIN_DOORS: dict[str, Door] = {
    "admin order change": lambda c, oid: c.post(reverse("admin:orders_order_change", args=[oid]), {**ADDRESS}),
    "admin approve action": lambda c, oid: c.post(
        reverse("admin:orders_order_changelist"), {"action": "approve_selected", "_selected_action": [oid]}
    ),
    "admin cancel action": lambda c, oid: c.post(
        reverse("admin:orders_order_changelist"), {"action": "cancel_selected", "_selected_action": [oid]}
    ),
    "admin revoke tokens action": lambda c, oid: c.post(
        reverse("admin:orders_apitoken_changelist"),
        {"action": "revoke_selected", "_selected_action": list(ApiToken.objects.values_list("pk", flat=True))},
    ),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("door", list(ADMIN_DOORS))
def test_every_admin_door_refuses_who_lacks_the_permission_and_writes_nothing(
    db: None, no_temporal: None, door: str, persona: str
) -> None:
    from django.contrib.admin.models import LogEntry

    order = make_order()
    token_create(user=User.objects.create_user("bystander"), name="someone else's")
    client = persona_client(persona, "admin")
    before, log_entries = written(), LogEntry.objects.count()
    response = ADMIN_DOORS[door](client, order.id)
    if persona == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    elif door in ("admin approve action", "admin cancel action") and persona == "view only":
        # Admin offers no action the user may not take, so the POST names no known action and
        # the list is simply shown again.
        assert response.status_code == 200
        assert not [str(m) for m in response.context["messages"]]
    else:
        assert response.status_code == 403
    assert written() == before
    assert LogEntry.objects.count() == log_entries


def test_a_non_staff_user_with_every_order_permission_cannot_use_admin(db: None, no_temporal: None) -> None:
    ensure_groups()
    user = User.objects.create_user("outsider")
    user.groups.add(Group.objects.get(name=REVIEWERS))
    order = make_order()
    before = written()
    for door in ADMIN_DOORS.values():
        response = door(signed_in(user), order.id)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert written() == before


def test_admin_forms_need_their_csrf_token(reviewer: User, no_temporal: None) -> None:
    order = make_order()
    assert (
        Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "rita", "password": PASSWORD}).status_code
        == 403
    )
    client = signed_in(reviewer, enforce_csrf_checks=True)
    before = written()
    assert client.post(reverse("admin:orders_order_change", args=[order.id]), ADDRESS).status_code == 403
    changelist = reverse("admin:orders_order_changelist")
    assert client.post(changelist, {"action": "approve_selected", "_selected_action": [order.id]}).status_code == 403
    assert written() == before
