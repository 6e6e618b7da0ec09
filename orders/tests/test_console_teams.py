"""The console for a team, server side: notes, cancel reasons, filters, claims and approvals shown,
the people pages, and their query counts. Rows without workflows (no Temporal needed) unless the
test takes `workers`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Event, Note, Order
from orders.permissions import REVIEWERS, SUPERVISORS, ensure_groups
from orders.tests.factories import make_order, make_orders, new_order_id, order_body, wait_for_state
from orders.views.queue import bulk_summary

PASSWORD = "pw-for-tests-123"


def member(username: str, group: str = REVIEWERS) -> User:
    ensure_groups()
    user = User.objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get(name=group))
    return user


def console_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- notes ----------------------------------------------------------------------------------------
def test_a_note_is_added_and_shown_escaped_on_the_timeline_in_time_order(db: None) -> None:
    rita = member("rita")
    order = make_order()
    Event.objects.create(
        id=f"{order.id}:RECEIVED", order=order, type="ORDER_RECEIVED", timestamp=timezone.now() - timedelta(minutes=1)
    )
    client = console_for(rita)
    response = client.post(f"/review/orders/{order.id}/notes/", {"text": "<script>alert(1)</script> call first"})
    assert response.status_code == 302
    note = Note.objects.get(order=order)
    assert (note.author, note.text) == (rita, "<script>alert(1)</script> call first")
    page = client.get(f"/review/orders/{order.id}/").content.decode()
    timeline = page.split('id="timeline"', 1)[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; call first" in timeline
    assert "<script>alert(1)" not in page
    assert timeline.index('data-event-type="ORDER_RECEIVED"') < timeline.index('data-event-type="NOTE"')
    assert "by <bdi>rita</bdi>" in timeline


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
def test_an_empty_or_too_long_note_is_a_form_error(db: None, text: str) -> None:
    order = make_order()
    response = console_for(member("rita")).post(f"/review/orders/{order.id}/notes/", {"text": text})
    assert response.status_code == 400
    assert b'id="note-error"' in response.content
    assert not Note.objects.exists()


def test_a_note_needs_the_permission_and_a_csrf_token(db: None) -> None:
    order = make_order()
    viewer = User.objects.create_user("vic")
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    assert console_for(viewer).post(f"/review/orders/{order.id}/notes/", {"text": "hi"}).status_code == 403
    assert b"Add a note" not in console_for(viewer).get(f"/review/orders/{order.id}/").content
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member("rita"))
    assert strict.post(f"/review/orders/{order.id}/notes/", {"text": "hi"}).status_code == 403
    assert not Note.objects.exists()


def test_supervisors_may_add_notes_too(db: None) -> None:
    order = make_order()
    assert (
        console_for(member("sue", SUPERVISORS)).post(f"/review/orders/{order.id}/notes/", {"text": "ok"}).status_code
        == 302
    )


def test_notes_are_never_edited_or_deleted(db: None) -> None:
    note = Note.objects.create(order=make_order(), author=member("rita"), text="first")
    note.text = "changed"
    with pytest.raises(PermissionError):
        note.save()
    with pytest.raises(PermissionError):
        note.delete()


def test_the_order_page_runs_as_many_queries_with_many_notes(db: None) -> None:
    rita = member("rita")
    client = console_for(rita)
    order = make_order()
    client.get(f"/review/orders/{order.id}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/review/orders/{order.id}/")
    Note.objects.bulk_create(Note(order=order, author=rita, text=f"note {n}") for n in range(30))
    with CaptureQueriesContext(connection) as many:
        page = client.get(f"/review/orders/{order.id}/").content.decode()
    assert page.count('data-event-type="NOTE"') == 30
    assert len(few) == len(many)


# --- cancel reasons -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "form", [{"code": "other", "text": ""}, {"code": "bogus"}, {"code": "other", "text": "y" * 501}, {}]
)
def test_a_cancel_without_a_good_reason_is_a_form_error_and_acts_on_nothing(db: None, form: dict[str, str]) -> None:
    order = make_order()
    response = console_for(member("rita")).post(f"/review/orders/{order.id}/cancel/", {"nonce": "c-1", **form})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="cancel-dialog"' in html and "open data-reopen" in html and "field-error" in html
    assert not Event.objects.exists()


def test_the_cancel_dialog_shows_the_order_id_as_typed(db: None) -> None:
    order = make_order(id="order-MiXeD-Case")
    html = console_for(member("rita")).get(f"/review/orders/{order.id}/?cancel=1").content.decode()
    assert 'id="cancel-title" class="plain">Cancel order <bdi>order-MiXeD-Case</bdi>?' in html
    # Without the script the link's ?cancel=1 shows the dialog open in the page; the script makes it modal.
    assert '<dialog id="cancel-dialog" aria-labelledby="cancel-title" open data-reopen>' in html


def test_a_console_cancel_records_its_reason_and_the_timeline_shows_it(workers: Any, api: Client) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    wait_for_state(order_id, "AWAITING_APPROVAL")
    client = console_for(member("rita"))
    form = {"nonce": "c-2", "code": "suspected_fraud", "text": "<b>card</b> reported stolen"}
    assert client.post(f"/review/orders/{order_id}/cancel/", form).status_code == 302
    wait_for_state(order_id, "CANCELLED")
    cancelled = Event.objects.get(order_id=order_id, type="ORDER_CANCELLED").payload_json
    assert cancelled["reason"] == "Suspected fraud: <b>card</b> reported stolen"
    assert cancelled["actor"] == "rita"
    timeline = client.get(f"/review/orders/{order_id}/").content.decode().split('id="timeline"', 1)[1]
    assert "Suspected fraud: &lt;b&gt;card&lt;/b&gt; reported stolen" in timeline


# --- the queue for a team -------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["min_total=abc", "max_total=-1", "min_total=10&max_total=5", "sort=price", "view=x"])
def test_bad_filters_are_form_errors_not_500(db: None, query: str) -> None:
    make_order()
    response = console_for(member("rita")).get(f"/review/?{query}")
    assert response.status_code == 400
    assert b'id="filter-error"' in response.content


def test_the_queue_narrows_to_mine_unclaimed_escalated_second_and_a_total_range(db: None) -> None:
    rita, sam = member("rita"), member("sam")
    now = timezone.now()
    mine = make_order(id="o-mine", claimed_by=rita, claimed_at=now)
    make_order(id="o-sams", claimed_by=sam, claimed_at=now)
    make_order(id="o-free")
    make_order(id="o-escalated", escalated_at=now)
    make_order(id="o-second", approvals_required=2, first_approver=sam, first_approved_at=now, total=Decimal("1500"))
    client = console_for(rita)

    def listed(query: str) -> set[str]:
        html = client.get(f"/review/?{query}").content.decode()
        return {
            oid for oid in ("o-mine", "o-sams", "o-free", "o-escalated", "o-second") if f'data-order-id="{oid}"' in html
        }

    assert listed("view=mine") == {mine.id}
    assert listed("view=unclaimed") == {"o-free", "o-escalated", "o-second"}
    assert listed("view=escalated") == {"o-escalated"}
    assert listed("view=second") == {"o-second"}
    assert listed("min_total=1000") == {"o-second"}
    assert listed("max_total=100") == {"o-mine", "o-sams", "o-free", "o-escalated"}


def test_escalated_orders_come_first_then_the_nearest_deadline(db: None) -> None:
    now = timezone.now()
    make_order(id="o-late", approval_deadline=now + timedelta(hours=5))
    make_order(id="o-soon", approval_deadline=now + timedelta(hours=1))
    make_order(id="o-escalated", approval_deadline=now + timedelta(hours=9), escalated_at=now)
    html = console_for(member("rita")).get("/review/").content.decode()
    assert html.index('"o-escalated"') < html.index('"o-soon"') < html.index('"o-late"')
    by_total = console_for(member("sam")).get("/review/?sort=age").content.decode()
    assert by_total.index('"o-escalated"') < by_total.index('"o-late"')


def test_the_queue_shows_claims_approvals_and_an_absolute_deadline(db: None) -> None:
    rita, sam = member("rita"), member("sam")
    now = timezone.now()
    make_order(id="o-sams", claimed_by=sam, claimed_at=now)
    make_order(id="o-mine", claimed_by=rita, claimed_at=now)
    make_order(id="o-second", approvals_required=2, first_approver=sam, first_approved_at=now)
    make_order(id="o-free")
    html = console_for(rita).get("/review/").content.decode()
    assert "Claimed by <bdi>sam</bdi>" in html and "Claimed by you" in html
    assert "1 of 2 approvals — first by <bdi>sam</bdi>" in html
    assert 'aria-label="Claim o-free"' in html and 'aria-label="Release o-mine"' in html
    assert 'aria-label="Claim o-sams"' not in html and "Take over" not in html  # not a supervisor
    assert 'class="deadline"><time datetime=' in html and " UTC</time>" in html
    supervisor = console_for(member("sue", SUPERVISORS)).get("/review/").content.decode()
    assert 'aria-label="Take over o-sams from sam"' in supervisor


def test_the_queue_runs_as_many_queries_with_claims_and_approvals(db: None) -> None:
    rita = member("rita")
    client = console_for(rita)
    make_orders(5, numbered=True)
    client.get("/review/")
    with CaptureQueriesContext(connection) as few:
        assert client.get("/review/").status_code == 200
    Order.objects.all().delete()
    people = [member(f"r{n}") for n in range(6)]
    now = timezone.now()
    for n in range(60):
        make_order(claimed_by=people[n % 6], claimed_at=now, first_approver=people[(n + 1) % 6], approvals_required=2)
    with CaptureQueriesContext(connection) as many:
        assert client.get("/review/").status_code == 200
    assert len(few) == len(many)


def test_the_page_has_a_skip_link_and_no_endless_connecting_without_the_script(db: None) -> None:
    html = console_for(member("rita")).get("/review/").content.decode()
    assert '<a class="skip-link" href="#queue-table">Skip to the orders</a>' in html
    assert 'id="queue-table" tabindex="-1"' in html
    assert "Connecting…" not in html  # the script says so when it connects; without it, "Reload to update"
    assert "data-needs-selection disabled" not in html  # the bulk buttons work as plain forms


def test_bulk_results_have_one_summary_line() -> None:
    from lifecycle.states import Action

    rows = [{"verdict": "applied"}, {"verdict": "applied"}, {"verdict": "refused"}, {"verdict": "unavailable"}]
    assert bulk_summary(Action.APPROVE, rows) == "2 approved, 1 refused, 1 not confirmed (of 4)"
    assert bulk_summary(Action.CANCEL, [{"verdict": "refused"}]) == "0 cancelled, 1 refused (of 1)"
    first = {"verdict": "applied", "detail": "first of two approvals; the order needs a second reviewer"}
    assert bulk_summary(Action.APPROVE, [first, rows[0]]) == "1 approved, 1 first of two approvals (of 2)"


def test_admin_lists_notes_and_changes_or_deletes_none(db: None) -> None:
    note = Note.objects.create(order=make_order(), author=member("rita"), text="<b>look</b>")
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password=PASSWORD))
    listing = admin.get("/admin/orders/note/").content.decode()
    assert "&lt;b&gt;look&lt;/b&gt;" in listing
    assert admin.get(f"/admin/orders/note/{note.pk}/delete/").status_code == 403
    admin.post(f"/admin/orders/note/{note.pk}/change/", {"text": "changed"})
    assert Note.objects.get(pk=note.pk).text == "<b>look</b>"


def test_the_live_feed_says_who_holds_each_claim(db: None) -> None:
    from orders.feed import Window, _page_after

    rita = member("rita")
    make_order(id="o-held", claimed_by=rita, claimed_at=timezone.now())
    make_order(id="o-free")
    window = Window(timezone.now() - timedelta(minutes=1))
    changes = {change["order_id"]: change for change in window.news(_page_after(window.start()))}
    assert changes["o-held"]["claimed_by"] == "rita"
    assert changes["o-free"]["claimed_by"] is None


def test_select_all_matching_acts_on_every_order_the_filters_list(workers: Any, api: Client, settings: Any) -> None:
    settings.REVIEW_PAGE_SIZE = 2
    small = []
    for _ in range(3):
        order_id = new_order_id()
        api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
        small.append(order_id)
    big = new_order_id()
    items = [{"name": "Espresso machine", "price": "650.00", "quantity": 2}]
    api.post(f"/orders/{big}/start", order_body(items=items), content_type="application/json")
    for order_id in [*small, big]:
        wait_for_state(order_id, "AWAITING_APPROVAL")
    client = console_for(member("rita"))
    filters = "state=AWAITING_APPROVAL&max_total=100"
    assert "Select all 3 matching" in client.get(f"/review/?{filters}").content.decode()
    form = {"action": "approve", "all_matching": "1", "filters": filters, "nonce": "all-1"}
    html = client.post("/review/bulk/", form, follow=True).content.decode()
    assert "Bulk approve: 3 approved (of 3)" in html
    for order_id in small:
        wait_for_state(order_id, "PAYMENT_CHARGED", "SHIPPING", "SHIPPED", "COMPLETED")
    assert Order.objects.get(id=big).state == "AWAITING_APPROVAL"


def test_approve_and_open_the_next_goes_to_the_next_order_nobody_else_holds(workers: Any, api: Client) -> None:
    first, second = new_order_id(), new_order_id()
    for order_id in (first, second):
        api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
        wait_for_state(order_id, "AWAITING_APPROVAL")
    client = console_for(member("rita"))
    response = client.post(f"/review/orders/{first}/approve/", {"nonce": "n-next", "then": "next"})
    assert response.status_code == 302
    assert response["Location"] == f"/review/orders/{second}/"
    assert b"Approved: " + first.encode() in client.get(response["Location"]).content


def test_the_order_page_says_who_holds_the_claim_and_who_may_not_approve(db: None) -> None:
    rita, sam, shop = member("rita"), member("sam"), User.objects.create_user("shop")
    now = timezone.now()
    order = make_order(claimed_by=sam, claimed_at=now, approvals_required=2, started_by=shop, total=Decimal("1300"))
    html = console_for(rita).get(f"/review/orders/{order.id}/").content.decode()
    assert "Claimed by <bdi>sam</bdi>" in html and "approvals by anyone else are refused" in html
    assert "0 of 2 approvals" in html
    assert "Started by <bdi>shop</bdi>, who cannot approve it" in html
    assert 'data-shortcut="claim"' not in html  # a reviewer cannot take it over; a supervisor can
    assert ">Take over<" in console_for(member("sue", SUPERVISORS)).get(f"/review/orders/{order.id}/").content.decode()
