"""The console for a team in a real Chromium against a real stack (web app and worker processes):
two reviewers racing for one order, bulk approve over claims and four-eyes orders, keyboard
shortcuts, the console without JavaScript, a phone's width, the reader's time zone, escaping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orders.tests.factories import wait_for_state, wait_until
from orders.tests.test_console_browser import PASSWORD, Stack, chromium, log_in, running_stack, screenshot

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with test_console_browser

FOUR_EYES_ITEMS = [{"name": "Espresso machine", "price": "650.00", "quantity": 2}]  # 1,300.00
ESCALATE_AFTER = 6  # seconds: an order left alone this long is escalated (the screenshot shows one)


@pytest.fixture(scope="module")
def team_stack(django_db_setup: None, django_db_blocker: Any, temporal: Any, tmp_path_factory: Any) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("team-stack")
    settings = {"ESCALATE_AFTER_SECONDS": ESCALATE_AFTER, "FOUR_EYES_MIN_TOTAL": "1000.00"}
    with running_stack(django_db_blocker, temporal, log_dir, **settings) as running:
        yield running


@pytest.fixture
def team(team_stack: Stack, transactional_db: None) -> Iterator[dict[str, Any]]:
    """Reviewers rita and sam, supervisor sue, and their API tokens; the shop's starts the orders.
    Afterwards the orders still open are cancelled, so no workflow escalates an order whose row
    the next test's flush removed."""
    from django.contrib.auth.models import Group, User

    from orders.permissions import API_CLIENTS, REVIEWERS, SUPERVISORS, ensure_groups
    from orders.tokens import token_create

    ensure_groups()
    tokens = {}
    for name, group in (("rita", REVIEWERS), ("sam", REVIEWERS), ("sue", SUPERVISORS), ("shop", API_CLIENTS)):
        user = User.objects.create_user(name, password=PASSWORD)
        user.groups.add(Group.objects.get(name=group))
        tokens[name] = token_create(user=user)
    yield tokens
    from orders.selectors import open_order_ids

    for order_id in open_order_ids():
        team_stack.api("POST", f"/orders/{order_id}/signals/cancel", tokens["shop"])


def new_page(chromium: Any, width: int = 1280, height: int = 820, **options: Any) -> Any:
    context = chromium.new_context(viewport={"width": width, "height": height}, **options)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def waiting_order(stack: Stack, team: dict[str, Any], **overrides: Any) -> str:
    order_id = stack.start_order(team["shop"], **overrides)
    wait_for_state(order_id, "AWAITING_APPROVAL")
    return order_id


def message(page: Any) -> str:
    page.wait_for_selector(".message")
    return str(page.inner_text(".messages"))


def test_two_reviewers_race_for_one_order_and_the_loser_is_told_who_won(
    team_stack: Stack, team: dict[str, Any], chromium: Any
) -> None:
    from orders.models import Event

    order_id = waiting_order(team_stack, team)
    rita, sam = new_page(chromium), new_page(chromium)
    try:
        for page, name in ((rita, "rita"), (sam, "sam")):
            # Neither page refreshes itself: each still shows the order unclaimed when its reviewer clicks.
            page.route("**/*partial=1*", lambda route: route.abort())
            log_in(page, team_stack, name, f"/review/orders/{order_id}/")
            page.wait_for_selector("button[data-shortcut='claim']")
        # Both saw the order unclaimed; both press Claim, one right after the other.
        rita.click("button[data-shortcut='claim']")
        sam.click("button[data-shortcut='claim']")
        words = {"rita": message(rita), "sam": message(sam)}
        winners = [name for name, text in words.items() if text.startswith("Claimed")]
        assert len(winners) == 1, words
        winner = winners[0]
        loser, loser_page = ("sam", sam) if winner == "rita" else ("rita", rita)
        assert f"claimed by {winner}" in words[loser]
        assert Event.objects.filter(order_id=order_id, type="ORDER_CLAIMED").count() == 1
        # The loser's approval is refused too, naming the claimant; the claimant's goes through.
        loser_page.goto(f"{team_stack.url}/review/orders/{order_id}/")
        loser_page.wait_for_selector(f"#claim-holder:has-text('Claimed by {winner}')")
        loser_page.click("button:text-is('Approve')")
        assert f"claimed by {winner}" in message(loser_page)
        winner_page = rita if winner == "rita" else sam
        winner_page.goto(f"{team_stack.url}/review/orders/{order_id}/")
        winner_page.click("button:text-is('Approve')")
        assert message(winner_page).startswith("Approved")
        wait_for_state(order_id, "PAYMENT_CHARGED", "SHIPPING", "SHIPPED", "COMPLETED")
        approved = Event.objects.get(order_id=order_id, type="ORDER_APPROVED").payload_json
        assert approved["actor"] == winner
    finally:
        rita.context.close()
        sam.context.close()


def test_bulk_approve_respects_claims_and_four_eyes_and_says_what_happened(
    team_stack: Stack, team: dict[str, Any], chromium: Any
) -> None:
    plain = waiting_order(team_stack, team)
    big = waiting_order(team_stack, team, items=FOUR_EYES_ITEMS)
    held = waiting_order(team_stack, team)
    status, body = team_stack.api("POST", f"/orders/{held}/signals/claim", team["sam"])
    assert status == 202, body
    page = new_page(chromium)
    try:
        log_in(page, team_stack, "rita")
        for order_id in (plain, big, held):
            page.check(f'input[name="order_ids"][value="{order_id}"]')
        page.click("button:text-is('Approve selected')")
        page.wait_for_selector("#results-title")
        assert page.evaluate("document.activeElement.id") == "results-title"
        assert page.inner_text("#results-title") == (
            "Bulk approve: 1 approved, 1 first of two approvals, 1 refused (of 3)"
        )
        rows = {row.split("\t")[0]: row for row in page.inner_text(".results tbody").splitlines()}
        assert "Approved" in rows[plain]
        assert "First of two approvals" in rows[big] and "second reviewer" in rows[big]
        assert "Refused" in rows[held] and "claimed by sam" in rows[held]
        # The four-eyes order waits for a second reviewer, and the console says who gave the first.
        page.goto(f"{team_stack.url}/review/orders/{big}/")
        assert "1 of 2 approvals — first by rita" in page.inner_text("#approvals")
        screenshot(page, "order-second-approval.png")
        page.click("button:text-is('Approve')")
        assert "needs a second reviewer" in message(page)
        second = new_page(chromium)
        log_in(second, team_stack, "sam", f"/review/orders/{big}/")
        second.click("button:text-is('Approve')")
        assert message(second).startswith("Approved")
        second.context.close()
        wait_for_state(big, "PAYMENT_CHARGED", "SHIPPING", "SHIPPED", "COMPLETED")
    finally:
        page.context.close()


def test_the_queue_shows_claims_and_escalations_live(team_stack: Stack, team: dict[str, Any], chromium: Any) -> None:
    from orders.models import Order

    late = waiting_order(team_stack, team)
    wait_until(lambda: Order.objects.filter(id=late).exclude(escalated_at=None).exists(), what="escalation")
    page = new_page(chromium)
    try:
        log_in(page, team_stack, "rita")
        page.wait_for_selector('#live-status[data-state="open"]')
        fresh = [waiting_order(team_stack, team) for _ in range(3)]
        big = waiting_order(team_stack, team, items=FOUR_EYES_ITEMS)
        status, _ = team_stack.api("POST", f"/orders/{fresh[0]}/signals/claim", team["sam"])
        assert status == 202
        page.wait_for_selector(f'tr[data-order-id="{fresh[0]}"] .claim-holder:has-text("Claimed by sam")')
        page.click(f'tr[data-order-id="{fresh[1]}"] button:text-is("Claim")')
        page.wait_for_selector(f'tr[data-order-id="{fresh[1]}"] .claim-holder:has-text("Claimed by you")')
        team_stack.api("POST", f"/orders/{big}/signals/approve", team["sam"])
        page.wait_for_selector(f'tr[data-order-id="{big}"] .approvals:has-text("first by sam")')
        first_row = page.locator("#queue-table tbody tr").first
        assert first_row.get_attribute("data-order-id") == late
        assert first_row.locator(".badge.escalated").count() == 1
        screenshot(page, "review-queue-team.png")
    finally:
        page.context.close()


def test_a_reviewer_works_through_the_queue_with_the_keyboard(
    team_stack: Stack, team: dict[str, Any], chromium: Any
) -> None:
    orders = [waiting_order(team_stack, team) for _ in range(2)]
    page = new_page(chromium)
    try:
        log_in(page, team_stack, "rita", "/review/?sort=age")
        ids = page.eval_on_selector_all("#queue-table tr[data-order-id]", "rows => rows.map(r => r.dataset.orderId)")
        page.keyboard.press("j")
        assert page.evaluate("document.activeElement.textContent") == ids[0]
        page.wait_for_selector("#announcer:has-text(' of ')", state="attached")
        assert page.inner_text("#announcer").startswith(f"Order {ids[0]}, 1 of {len(ids)}")
        page.keyboard.press("x")
        assert page.inner_text("#selection-count") == "1 selected"
        page.keyboard.press("?")
        page.wait_for_selector("#shortcuts-dialog[open]")
        page.keyboard.press("Escape")
        # Typing in a field is typing, not a shortcut.
        page.focus("#q")
        page.keyboard.type("jx")
        assert page.input_value("#q") == "jx"
        assert page.inner_text("#selection-count") == "1 selected"
        target = orders[-1]
        page.focus(f'tr[data-order-id="{target}"] .order-link')
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("c")
        assert message(page).startswith(f"Claimed: {target}")
        page.focus(f'tr[data-order-id="{target}"] .order-link')
        page.keyboard.press("k")
        page.keyboard.press("j")
        page.keyboard.press("o")
        page.wait_for_url(f"**/review/orders/{target}/")
        page.keyboard.press("a")
        assert message(page).startswith(f"Approved: {target}")
    finally:
        page.context.close()


def test_without_javascript_the_buttons_are_plain_forms(team_stack: Stack, team: dict[str, Any], chromium: Any) -> None:
    from orders.models import Event

    approve_me, claim_me, cancel_me = (waiting_order(team_stack, team) for _ in range(3))
    page = new_page(chromium, java_script_enabled=False)
    try:
        log_in(page, team_stack, "rita")
        assert page.inner_text("#live-status") == "Reload to update"
        page.check(f'input[name="order_ids"][value="{approve_me}"]')
        page.click("button:text-is('Approve selected')")
        assert "1 approved" in page.inner_text("#results-title")
        page.click(f'tr[data-order-id="{claim_me}"] button:text-is("Claim")')
        assert message(page).startswith(f"Claimed: {claim_me}")
        page.goto(f"{team_stack.url}/review/orders/{cancel_me}/")
        page.click("text=Cancel order…")
        page.wait_for_selector("#cancel-dialog[open]")
        page.select_option("#cancel-code", "address_problem")
        page.fill("#cancel-text", "<script>window.__xss = 1</script> no such street")
        page.click("button:text-is('Yes, cancel the order')")
        assert message(page).startswith("Cancellation accepted")
        wait_for_state(cancel_me, "CANCELLED")
        reason = Event.objects.get(order_id=cancel_me, type="ORDER_CANCELLED").payload_json["reason"]
        assert reason == "Address problem: <script>window.__xss = 1</script> no such street"
    finally:
        page.context.close()


def test_notes_and_reasons_are_shown_as_typed_never_run(team_stack: Stack, team: dict[str, Any], chromium: Any) -> None:
    order_id = waiting_order(team_stack, team)
    page = new_page(chromium)
    try:
        log_in(page, team_stack, "rita", f"/review/orders/{order_id}/")
        hostile = '<img src=x onerror="window.__xss = 1"> <script>window.__xss = 2</script> check ID'
        page.fill("#id_text", hostile)
        page.click("button:text-is('Add note')")
        page.wait_for_selector('#timeline li[data-event-type="NOTE"]')
        assert hostile in page.inner_text('#timeline li[data-event-type="NOTE"] .note-text')
        page.click("[data-confirm='cancel-dialog']")
        page.select_option("#cancel-code", "other")
        page.fill("#cancel-text", hostile)
        screenshot(page, "cancel-dialog.png")
        page.click("button:text-is('Yes, cancel the order')")
        page.wait_for_selector('#timeline li[data-event-type="ORDER_CANCELLED"]')
        assert hostile in page.inner_text('#timeline li[data-event-type="ORDER_CANCELLED"]')
        assert page.evaluate("window.__xss") is None
    finally:
        page.context.close()


def test_a_phone_shows_the_queue_without_sideways_scroll_and_keeps_the_deadline_in_view(
    team_stack: Stack, team: dict[str, Any], chromium: Any
) -> None:
    order_id = waiting_order(team_stack, team, items=FOUR_EYES_ITEMS)
    page = new_page(chromium, 390, 844, timezone_id="America/New_York", locale="en-US")
    try:
        log_in(page, team_stack, "rita")
        row = f'tr[data-order-id="{order_id}"]'
        page.wait_for_selector(row)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "review-queue-phone.png")
        # The live queue re-renders its rows as orders change: measure a cell that is on screen.
        box = wait_until(lambda: page.locator(f"{row} .deadline").bounding_box(), timeout=10, what="the deadline")
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        # The deadline is in the reader's zone, labelled with it.
        assert "EST" in page.inner_text(f"{row} .deadline")
        page.goto(f"{team_stack.url}/review/orders/{order_id}/")
        screenshot(page, "order-phone.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert "EST" in page.inner_text("#timeline time >> nth=0")
        # The skip link is the first stop of the keyboard; on the queue it leads to the orders.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
        page.goto(f"{team_stack.url}/review/")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "select-all"
    finally:
        page.context.close()


def test_the_countdown_turns_amber_only_near_the_end_of_the_window(
    team_stack: Stack, team: dict[str, Any], chromium: Any
) -> None:
    order_id = waiting_order(team_stack, team)
    page = new_page(chromium)
    try:
        log_in(page, team_stack, "rita", f"/review/orders/{order_id}/")
        day = 86400
        page.evaluate(
            """([day]) => {
                for (const [id, left] of [["calm", 5 * 3600], ["soon", 1800], ["urgent", 30]]) {
                    const el = document.createElement("span");
                    el.id = "cd-" + id;
                    el.dataset.deadline = new Date(Date.now() + left * 1000).toISOString();
                    el.dataset.window = String(day);
                    document.body.appendChild(el);
                }
            }""",
            [day],
        )
        page.wait_for_selector("#cd-soon.countdown.soon", state="attached")
        assert page.get_attribute("#cd-calm", "class") == "countdown"
        assert page.get_attribute("#cd-urgent", "class") == "countdown urgent"
        assert page.inner_text("#cd-calm") in ("5h 00m left", "4h 59m left")
    finally:
        page.context.close()
