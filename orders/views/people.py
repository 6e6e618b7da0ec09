"""Who did what: a page per reviewer, and for supervisors a view of the team."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from orders import selectors
from orders.permissions import REASSIGN_ORDER
from orders.views.common import console_view


def sees_the_team(user: Any) -> bool:
    """Supervisors (who may reassign claims) and staff see everyone's work."""
    return bool(user.is_staff or user.has_perm(REASSIGN_ORDER))


@login_required
@console_view
def person(request: HttpRequest, username: str) -> HttpResponse:
    """A reviewer's own page; another's only for those who see the team."""
    if username != request.user.get_username() and not sees_the_team(request.user):
        raise PermissionDenied("only supervisors see other reviewers' pages")
    if len(username) > 150:
        raise Http404("No such reviewer")
    now = timezone.now()
    tallies, actions = selectors.person_activity(username=username, now=now)
    today, week = selectors.period_starts(now)
    context = {
        "person": username,
        "tallies": tallies,
        "actions": actions,
        "today": today,
        "week": week,
        "shown": selectors.ACTIONS_SHOWN,
        "sees_team": sees_the_team(request.user),
    }
    return render(request, "review/person.html", context)


@login_required
@console_view
def team(request: HttpRequest) -> HttpResponse:
    if not sees_the_team(request.user):
        raise PermissionDenied("the team view is for supervisors")
    now = timezone.now()
    today, week = selectors.period_starts(now)
    rows = selectors.team_activity(now=now, usernames=selectors.team_members())
    return render(request, "review/team.html", {"rows": rows, "today": today, "week": week})
