"""Request and response guards: oversized bodies get a JSON 413 before any view parses them, API
errors are always JSON, and every response carries the Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

# Paths where people get pages; everything else is the JSON API.
HTML_PREFIXES = ("/admin/", "/review/", "/accounts/", "/docs", "/static/")


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
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
        return self.get_response(request)


class RefuseNulMiddleware:
    """A NUL byte in the URL (path or query) is refused with 400 before any view sees it.

    No id, search term or filter of ours may hold one, and PostgreSQL refuses NUL in text, so a
    view or admin page that passed it to a query would answer 500.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.GET.lists()
        if "\x00" in request.path or any("\x00" in key or any("\x00" in v for v in values) for key, values in query):
            if request.path.startswith(HTML_PREFIXES):
                return HttpResponseBadRequest(
                    "Bad request: the address contains a NUL byte.", content_type="text/plain"
                )
            return JsonResponse({"detail": "url: contains a NUL byte"}, status=400)
        return self.get_response(request)


class JsonErrorMiddleware:
    """Programs get JSON: an error that is not JSON already (405, a CSRF failure) becomes JSON."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
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


class ContentSecurityPolicyMiddleware:
    """Send settings.CONTENT_SECURITY_POLICY with every response (Django 5.2 has no CSP of its own).

    On every response, not only the console's pages: a policy on JSON or a redirect costs nothing,
    and a page added later is covered without anyone remembering to. A view that needs another
    policy sets the header itself; it is left alone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
