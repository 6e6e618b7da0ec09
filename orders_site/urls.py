from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from orders.api import api


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return JsonResponse({"detail": f"no such path: {request.path}"}, status=404)


def json_server_error(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"detail": "internal error; it has been logged"}, status=500)


handler404 = json_not_found
handler500 = json_server_error

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", api.urls),
]
