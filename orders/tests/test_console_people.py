"""Who did what: a reviewer's page, the supervisors' team view, and refusals that name who acted."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Event
from orders.permissions import REVIEWERS, SUPERVISORS, ensure_groups
from orders.tests.factories import make_order
from orders.views.common import name_who_decided


def member(username: str, group: str = REVIEWERS) -> User:
    ensure_groups()
    user = User.objects.create_user(username)
    user.groups.add(Group.objects.get(name=group))
    return user


def console_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def decide(actor: str, kind: str, *, after: timedelta, ago: timedelta = timedelta(0)) -> str:
    """An order that arrived `after` before `actor` decided it, `ago` before now."""
    decided = timezone.now() - ago
    order = make_order()
    order.created_at = decided - after
    order.save(update_fields=["created_at"])
    Event.objects.create(
        id=f"{order.id}:{kind}",
        order=order,
        type=kind,
        payload_json={"actor": actor, "via": "console"},
        timestamp=decided,
    )
    return str(order.id)


def test_a_reviewer_sees_their_decisions_median_and_actions_linking_to_orders(db: None) -> None:
    rita = member("rita")
    first = decide("rita", "ORDER_APPROVED", after=timedelta(minutes=2))
    decide("rita", "ORDER_CANCELLED", after=timedelta(minutes=4))
    decide("rita", "FIRST_APPROVAL", after=timedelta(minutes=10))
    decide("sam", "ORDER_APPROVED", after=timedelta(minutes=1))
    html = console_for(rita).get("/review/people/rita/").content.decode()
    assert 'id="decisions-today">3<' in html
    assert 'id="decisions-week">3<' in html
    assert 'id="median-time">4 min<' in html
    assert f'href="/review/orders/{first}/"' in html
    assert "Order approved" in html and "First approval" in html


def test_the_people_pages_run_a_fixed_number_of_queries(db: None) -> None:
    rita = member("rita")
    member("sue", SUPERVISORS)
    client = console_for(User.objects.get(username="sue"))
    decide("rita", "ORDER_APPROVED", after=timedelta(minutes=2))
    client.get("/review/people/rita/")
    client.get("/review/team/")
    with CaptureQueriesContext(connection) as person_few:
        client.get("/review/people/rita/")
    with CaptureQueriesContext(connection) as team_few:
        client.get("/review/team/")
    for n in range(25):
        decide("rita" if n % 2 else f"r{n}", "ORDER_APPROVED", after=timedelta(minutes=n))
    with CaptureQueriesContext(connection) as person_many:
        client.get("/review/people/rita/")
    with CaptureQueriesContext(connection) as team_many:
        html = client.get("/review/team/").content.decode()
    assert len(person_few) == len(person_many)
    assert len(team_few) == len(team_many)
    assert 'href="/review/people/r2/"' in html and rita.username in html


def test_only_supervisors_and_staff_see_the_team_and_others_pages(db: None) -> None:
    rita = member("rita")
    member("sam")
    client = console_for(rita)
    assert client.get("/review/people/rita/").status_code == 200
    assert client.get("/review/people/sam/").status_code == 403
    assert client.get("/review/team/").status_code == 403
    assert b'href="/review/team/"' not in client.get("/review/").content
    supervisor = console_for(member("sue", SUPERVISORS))
    assert supervisor.get("/review/people/sam/").status_code == 200
    assert supervisor.get("/review/team/").status_code == 200
    staff = User.objects.create_user("boss", is_staff=True)
    staff.groups.add(Group.objects.get(name=REVIEWERS))
    assert console_for(staff).get("/review/team/").status_code == 200


def test_a_refusal_names_who_decided_first(db: None) -> None:
    order_id = decide("sam", "ORDER_APPROVED", after=timedelta(minutes=1))
    refused = {"order_id": order_id, "detail": "the order is already approved", "verdict": "refused", "applied": False}
    named = name_who_decided(refused, "rita")["detail"]
    assert named.startswith("the order is already approved (approved by sam at ")
    assert named.endswith(" UTC)")
    assert "by you" in name_who_decided(refused, "sam")["detail"]
    claimed = {**refused, "detail": "the order is claimed by sam"}
    assert name_who_decided(claimed, "rita") == claimed  # the workflow's words name them already
