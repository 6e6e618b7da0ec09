"""Request and response guards: oversized bodies get a JSON 413 before any view parses them, API
errors are always JSON, and every response carries the Content-Security-Policy.

Each works both ways, sync and async. Under ASGI a sync-only middleware makes Django run it, and
everything inside it, through a thread hand-off (sync_to_async, then async_to_sync back) on every
request; the API's requests are async end to end, so these stay on the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils import timezone
from whitenoise.middleware import WhiteNoiseMiddleware

# Paths where people get pages; everything else is the JSON API.
HTML_PREFIXES = ("/admin/", "/review/", "/accounts/", "/docs", "/static/")


class Guard:
    """A middleware that may answer before the view (`refuse`) or change the response (`amend`),
    called the way the handler below it is: awaited under ASGI, directly under WSGI and in tests."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def refuse(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def amend(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return self.refuse(request) or self.amend(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        handler: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        return self.amend(request, await handler(request))


# An IANA zone name as browsers report it ("Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC").
ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")


def reader_zone(name: str) -> ZoneInfo | None:
    """The zone a `tz` cookie names, or None for anything else (no error: the page stays in UTC)."""
    if len(name) > 64 or not ZONE_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


class ReaderTimeZoneMiddleware(Guard):
    """Pages render times in the reader's own zone, from the `tz` cookie that review/timezone.js
    sets (admin names it next to the user's links); without it they stay in UTC, and say so."""

    def refuse(self, request: HttpRequest) -> HttpResponse | None:
        zone = reader_zone(request.COOKIES.get("tz", ""))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        return None


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, which is sync only, without putting every request through a thread: only a
    request under STATIC_URL goes to WhiteNoise (in a thread under ASGI); the rest go straight on."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any], settings: Any = settings) -> None:
        super().__init__(get_response, settings)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.static_prefix):
            static_file = await sync_to_async(self._find, thread_sensitive=False)(request.path_info)
            if static_file is not None:
                return self.serve(static_file, request)
        response: HttpResponse = await self.get_response(request)
        return response

    def _find(self, path: str) -> Any:
        return self.find_file(path) if self.autorefresh else self.files.get(path)


class BodySizeLimitMiddleware(Guard):
    def refuse(self, request: HttpRequest) -> HttpResponse | None:
        if request.method in ("POST", "PUT", "PATCH") and not request.path.startswith(HTML_PREFIXES):
            limit = settings.API_MAX_BODY_BYTES
            too_big = JsonResponse({"detail": f"body: the request body exceeds {limit // 1024} KiB"}, status=413)
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                return too_big
            try:
                if len(request.body) > limit:
                    return too_big
            except RequestDataTooBig:
                return too_big
        return None


class RefuseNulMiddleware(Guard):
    """A NUL byte in the URL (path or query) is refused with 400 before any view sees it.

    No id, search term or filter of ours may hold one, and PostgreSQL refuses NUL in text, so a
    view or admin page that passed it to a query would answer 500.
    """

    def refuse(self, request: HttpRequest) -> HttpResponse | None:
        query = request.GET.lists()
        if "\x00" in request.path or any("\x00" in key or any("\x00" in v for v in values) for key, values in query):
            if request.path.startswith(HTML_PREFIXES):
                return HttpResponseBadRequest(
                    "Bad request: the address contains a NUL byte.", content_type="text/plain"
                )
            return JsonResponse({"detail": "url: contains a NUL byte"}, status=400)
        return None


class JsonErrorMiddleware(Guard):
    """Programs get JSON: an error that is not JSON already (405, a CSRF failure) becomes JSON."""

    def amend(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if (
            response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
            and not request.path.startswith(HTML_PREFIXES)
        ):
            json_response = JsonResponse({"detail": response.reason_phrase or "error"}, status=response.status_code)
            if response.has_header("Allow"):
                json_response["Allow"] = response["Allow"]
            return json_response
        return response


class ContentSecurityPolicyMiddleware(Guard):
    """Send settings.CONTENT_SECURITY_POLICY with every response (Django 5.2 has no CSP of its own).

    On every response, not only the console's pages: a policy on JSON or a redirect costs nothing,
    and a page added later is covered without anyone remembering to. A view that needs another
    policy sets the header itself; it is left alone.
    """

    def amend(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class InlineHooks(Guard):
    """One of Django's MiddlewareMixin classes whose hooks do no I/O, with the hooks called on the
    event loop: MiddlewareMixin itself would hand each hook to a thread under ASGI."""

    inner_class: type[Any]

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        self.inner = self.inner_class(get_response)

    def refuse(self, request: HttpRequest) -> HttpResponse | None:
        hook = getattr(self.inner, "process_request", None)
        return hook(request) if hook else None

    def amend(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        hook = getattr(self.inner, "process_response", None)
        return hook(request, response) if hook else response


class ApiSecurityMiddleware(InlineHooks):
    """django.middleware.security.SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer and
    cross-origin-opener policies): header arithmetic only."""

    inner_class = SecurityMiddleware


class ApiXFrameOptionsMiddleware(InlineHooks):
    inner_class = XFrameOptionsMiddleware
