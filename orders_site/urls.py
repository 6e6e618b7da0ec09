from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView

from orders import health, metrics
from orders.api import api
from orders.middleware import HTML_PREFIXES
from orders.views.codec import codec


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """People get a page, programs get JSON."""
    if request.path.startswith(HTML_PREFIXES):
        return defaults.page_not_found(request, exception or Exception())
    return JsonResponse({"detail": f"no such path: {request.path}"}, status=404)


def json_server_error(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"detail": "internal error; it has been logged"}, status=500)


handler404 = json_not_found
handler500 = json_server_error

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("review/", include("orders.urls")),
    # Temporal's remote codec protocol, for the Temporal UI (orders/views/codec.py)
    path("codec/decode", codec, {"direction": "decode"}, name="codec-decode"),
    path("codec/encode", codec, {"direction": "encode"}, name="codec-encode"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("", RedirectView.as_view(url="/review/", permanent=False)),
    path("", api.urls),
]
