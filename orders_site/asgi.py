"""ASGI entry point: HTTP through Django, websockets through Channels.

Two Django handlers serve HTTP. The JSON API's order paths (`/orders/...`, bearer tokens, no
cookies) go through `API_MIDDLEWARE`, the guards an API needs; everything else (console, admin,
login, docs, static files) through the full `MIDDLEWARE`. Under ASGI each of Django's own
middleware classes runs its hooks through a thread hand-off, so the session, CSRF, auth, messages,
lockout and static-file layers that a token-authenticated JSON call never uses would cost it about
a dozen such hand-offs per request.
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.core.asgi import get_asgi_application

from lifecycle import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_site.settings")
django.setup(set_prefix=False)
# With OTEL_EXPORTER_OTLP_ENDPOINT set: spans for requests, before the handlers read the middleware.
if tracing.configure("web"):
    tracing.instrument_django()
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from orders.routing import websocket_urlpatterns  # noqa: E402

API_PREFIX = "/orders/"


class ApiHandler(ASGIHandler):
    """Django's ASGI handler with settings.API_MIDDLEWARE instead of settings.MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django reads the list from settings; it is swapped for the time of this call only,
        # once, at startup, before any request is served.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


api_asgi_app = ApiHandler()


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    app = api_asgi_app if scope["path"].startswith(API_PREFIX) else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
