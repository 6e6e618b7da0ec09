"""Programs get JSON errors: any non-JSON error response outside the HTML pages becomes JSON."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

HTML_PREFIXES = ("/review/", "/accounts/", "/admin/", "/docs", "/static/")


class JsonErrorMiddleware:
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
